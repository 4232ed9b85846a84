using System.Text;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Strings take a one-pass path when ASCII and fall back to full UTF-8 at the first other char.</summary>
public class MessagePackStringTests
{
    [Theory]
    [InlineData(0, "")]
    [InlineData(31, "")]
    [InlineData(32, "")]
    [InlineData(85, "")]
    [InlineData(86, "")]
    [InlineData(255, "")]
    [InlineData(256, "")]
    [InlineData(65_535, "")]
    [InlineData(65_536, "")]
    [InlineData(30, "é")] // 31 chars, 32 bytes: str8, not fixstr
    [InlineData(84, "€")] // 85 chars, 87 bytes
    [InlineData(254, "ü")] // 255 chars, 256 bytes: str16
    [InlineData(100, "😀")] // a surrogate pair at the end
    public void A_string_is_written_as_its_utf8_bytes_after_the_shortest_header(int asciiLength, string tail)
    {
        string value = new string('a', asciiLength) + tail;
        byte[] utf8 = Encoding.UTF8.GetBytes(value);
        byte[] header = utf8.Length switch
        {
            <= 31 => new[] { (byte)(0xa0 | utf8.Length) },
            <= 255 => new byte[] { 0xd9, (byte)utf8.Length },
            <= 65_535 => new byte[] { 0xda, (byte)(utf8.Length >> 8), (byte)utf8.Length },
            _ => new byte[] { 0xdb, (byte)(utf8.Length >> 24), (byte)(utf8.Length >> 16), (byte)(utf8.Length >> 8), (byte)utf8.Length },
        };

        var writer = new MessagePackWriter();
        writer.Write(1L); // something before, so a rollback must not disturb it
        writer.Write(value);
        writer.Write(2L);
        Assert.Equal(new byte[] { 1 }.Concat(header).Concat(utf8).Concat(new byte[] { 2 }).ToArray(), writer.ToArray());

        var reader = new MessagePackReader(writer.ToArray());
        Assert.Equal(1L, reader.ReadInt64());
        Assert.Equal(value, reader.ReadString());
        Assert.Equal(2L, reader.ReadInt64());
    }

    [Fact]
    public void A_lone_surrogate_is_refused_even_after_an_ascii_prefix()
    {
        var writer = new MessagePackWriter();
        writer.Write(1L);
        Assert.ThrowsAny<ArgumentException>(() => writer.Write(new string('a', 40) + "\ud800"));
    }
}
