import struct

from hypothesis import given
from hypothesis import strategies as st

from lab.core.checksum import internet_checksum


def test_rfc1071_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (carries folded); the checksum is its complement
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


@given(st.binary(max_size=300))
def test_a_message_with_its_checksum_appended_sums_to_zero(data):
    padded = data + (b"\0" if len(data) % 2 else b"")
    assert internet_checksum(padded + struct.pack("!H", internet_checksum(data))) == 0
