using DistributedBackprop.Core.Export;
using Xunit;

namespace DistributedBackprop.Core.Tests.Export;

/// <summary>The wire format against the encoding examples of the protobuf documentation.</summary>
public sealed class ProtobufWriterTests
{
    [Fact]
    public void A_varint_field_is_its_tag_then_seven_bits_per_byte_low_first() =>
        Assert.Equal([0x08, 0x96, 0x01], new ProtobufWriter().Int(1, 150).ToArray());

    [Fact]
    public void A_negative_int64_is_ten_bytes_of_twos_complement() =>
        Assert.Equal([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], new ProtobufWriter().Int(2, -1).ToArray());

    [Fact]
    public void A_string_field_is_length_delimited_utf8() =>
        Assert.Equal([0x12, 0x07, .. "testing"u8.ToArray()], new ProtobufWriter().String(2, "testing").ToArray());

    [Fact]
    public void A_float_field_is_four_little_endian_bytes() =>
        Assert.Equal([0x15, 0x00, 0x00, 0x80, 0x3F], new ProtobufWriter().Float(2, 1f).ToArray());

    [Fact]
    public void A_nested_message_is_length_delimited_and_float_data_is_raw_little_endian()
    {
        var inner = new ProtobufWriter().Int(1, 150);
        Assert.Equal([0x1A, 0x03, 0x08, 0x96, 0x01], new ProtobufWriter().Message(3, inner).ToArray());
        Assert.Equal([0x4A, 0x08, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0],
            new ProtobufWriter().Floats(9, [1f, -2f]).ToArray());
    }
}
