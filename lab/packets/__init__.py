"""Scapy: live and offline packet traces with an explanation on every line."""
