using PipelineDsl.CompilerServices;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

public class FormatterTests
{
    private static T RoundTrip<T>(IMessagePackFormatter<T> formatter, T value)
    {
        var writer = new MessagePackWriter(1);
        formatter.Serialize(writer, value);
        var reader = new MessagePackReader(writer.WrittenSpan);
        var result = formatter.Deserialize(ref reader);
        Assert.True(reader.End);
        return result;
    }

    [Fact]
    public void Primitives_round_trip_at_their_limits()
    {
        Assert.Equal(long.MinValue, RoundTrip(MessagePackFormatters.Int64, long.MinValue));
        Assert.Equal(ulong.MaxValue, RoundTrip(MessagePackFormatters.UInt64, ulong.MaxValue));
        Assert.Equal(int.MinValue, RoundTrip(MessagePackFormatters.Int32, int.MinValue));
        Assert.Equal(byte.MaxValue, RoundTrip(MessagePackFormatters.Byte, byte.MaxValue));
        Assert.Equal(sbyte.MinValue, RoundTrip(MessagePackFormatters.SByte, sbyte.MinValue));
        Assert.Equal(short.MinValue, RoundTrip(MessagePackFormatters.Int16, short.MinValue));
        Assert.Equal(ushort.MaxValue, RoundTrip(MessagePackFormatters.UInt16, ushort.MaxValue));
        Assert.Equal(uint.MaxValue, RoundTrip(MessagePackFormatters.UInt32, uint.MaxValue));
        Assert.Equal(0.1, RoundTrip(MessagePackFormatters.Double, 0.1));
        Assert.Equal(double.NaN, RoundTrip(MessagePackFormatters.Double, double.NaN));
        Assert.Equal(-0.0, RoundTrip(MessagePackFormatters.Double, -0.0));
        Assert.True(double.IsNegative(RoundTrip(MessagePackFormatters.Double, -0.0)));
        Assert.Equal(1.5f, RoundTrip(MessagePackFormatters.Single, 1.5f));
        Assert.Equal(79228162514264337593543950335m, RoundTrip(MessagePackFormatters.Decimal, decimal.MaxValue));
        Assert.Equal(-0.000001m, RoundTrip(MessagePackFormatters.Decimal, -0.000001m));
        Assert.Equal('é', RoundTrip(MessagePackFormatters.Char, 'é'));
        Assert.Equal("héllo ❤", RoundTrip(MessagePackFormatters.String, "héllo ❤"));
        Assert.Null(RoundTrip(MessagePackFormatters.String, null));
        Assert.Equal(new byte[] { 1, 2, 3 }, RoundTrip(MessagePackFormatters.Binary, new byte[] { 1, 2, 3 }));
        Assert.Equal(TimeSpan.FromTicks(-123456789), RoundTrip(MessagePackFormatters.TimeSpan, TimeSpan.FromTicks(-123456789)));
        var guid = Guid.Parse("0f8fad5b-d9cb-469f-a165-70867728950e");
        Assert.Equal(guid, RoundTrip(MessagePackFormatters.Guid, guid));
    }

    [Fact]
    public void DateTime_is_a_msgpack_timestamp_with_100ns_precision()
    {
        var t = new DateTime(2026, 11, 21, 5, 30, 1, DateTimeKind.Utc).AddTicks(1234567);
        Assert.Equal(t, RoundTrip(MessagePackFormatters.DateTime, t));
        Assert.Equal(DateTimeKind.Utc, RoundTrip(MessagePackFormatters.DateTime, t).Kind);
        var before1970 = new DateTime(1900, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddTicks(1);
        Assert.Equal(before1970, RoundTrip(MessagePackFormatters.DateTime, before1970));
        Assert.Equal(DateTime.MaxValue.Ticks, RoundTrip(MessagePackFormatters.DateTime, DateTime.SpecifyKind(DateTime.MaxValue, DateTimeKind.Utc)).Ticks);

        var writer = new MessagePackWriter();
        writer.Write(DateTime.UnixEpoch.AddSeconds(1));
        Assert.Equal("D6-FF-00-00-00-01", BitConverter.ToString(writer.ToArray()));
    }

    [Fact]
    public void DateTimeOffset_keeps_its_offset()
    {
        var t = new DateTimeOffset(2026, 11, 21, 7, 0, 0, TimeSpan.FromHours(2));
        var back = RoundTrip(MessagePackFormatters.DateTimeOffset, t);
        Assert.Equal(t, back);
        Assert.Equal(TimeSpan.FromHours(2), back.Offset);
    }

    [Fact]
    public void Collections_and_nullables_round_trip()
    {
        var list = new ListFormatter<string?>(MessagePackFormatters.String);
        Assert.Equal(new List<string?> { "a", null, "c" }, RoundTrip(list, new List<string?> { "a", null, "c" }));
        Assert.Null(RoundTrip(list, null));
        var array = new ArrayFormatter<long>(MessagePackFormatters.Int64);
        Assert.Equal(new long[] { 1, -1, long.MaxValue }, RoundTrip(array, new long[] { 1, -1, long.MaxValue }));
        var dict = new DictionaryFormatter<string, int>(MessagePackFormatters.String!, MessagePackFormatters.Int32);
        Assert.Equal(new Dictionary<string, int> { ["x"] = 1, ["y"] = 2 }, RoundTrip(dict, new Dictionary<string, int> { ["x"] = 1, ["y"] = 2 }));
        var nullable = new NullableFormatter<int>(MessagePackFormatters.Int32);
        Assert.Null(RoundTrip(nullable, null));
        Assert.Equal(5, RoundTrip(nullable, 5));
    }

    [Fact]
    public void A_list_and_an_array_share_one_encoding()
    {
        var w1 = new MessagePackWriter();
        new ListFormatter<int>(MessagePackFormatters.Int32).Serialize(w1, new List<int> { 1, 2 });
        var w2 = new MessagePackWriter();
        new ArrayFormatter<int>(MessagePackFormatters.Int32).Serialize(w2, new[] { 1, 2 });
        Assert.Equal(w1.ToArray(), w2.ToArray());
    }

    [Fact]
    public void Duplicate_map_keys_are_an_error()
    {
        var w = new MessagePackWriter();
        w.WriteMapHeader(2);
        w.Write("k");
        w.Write(1L);
        w.Write("k");
        w.Write(2L);
        var dict = new DictionaryFormatter<string, long>(MessagePackFormatters.String!, MessagePackFormatters.Int64);
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(w.WrittenSpan);
            dict.Deserialize(ref reader);
        });
        Assert.Contains("holds the key 'k' twice", e.Message);
    }

    [Fact]
    public void Strings_of_every_length_use_the_shortest_header_and_round_trip()
    {
        foreach (string alphabet in new[] { "a", "é", "❤" })
        {
            for (int length = 0; length <= 300; length++)
            {
                string value = string.Concat(Enumerable.Repeat(alphabet, length));
                int bytes = System.Text.Encoding.UTF8.GetByteCount(value);
                var w = new MessagePackWriter(1);
                w.Write(value);
                int header = bytes <= 31 ? 1 : bytes <= 255 ? 2 : bytes <= 65535 ? 3 : 5;
                Assert.Equal(header + bytes, w.Length);
                Assert.Equal(bytes <= 31 ? (byte)(0xa0 | bytes) : bytes <= 255 ? (byte)0xd9 : (byte)0xda, w.WrittenSpan[0]);
                var r = new MessagePackReader(w.WrittenSpan);
                Assert.Equal(value, r.ReadString());
                Assert.True(r.End);
            }
        }
    }

    [Fact]
    public void Out_of_range_narrowing_fails()
    {
        var w = new MessagePackWriter();
        w.Write(300L);
        Assert.Throws<OverflowException>(() =>
        {
            var reader = new MessagePackReader(w.WrittenSpan);
            MessagePackFormatters.Byte.Deserialize(ref reader);
        });
    }
}
