using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

/// <summary>Untrusted bytes: clear errors, no allocation beyond what the input justifies, no deep recursion.</summary>
public class MessagePackSafetyTests
{
    [Theory]
    [InlineData("dd-7f-ff-ff-ff", "claims 2147483647 elements")]   // array 32 with a huge count and no elements
    [InlineData("df-7f-ff-ff-ff", "claims 2147483647 entries")]    // map 32
    [InlineData("db-7f-ff-ff-ff-61", "exceeds the 1 bytes")]        // str 32 longer than the input
    [InlineData("c6-ff-ff-ff-ff", "exceeds the 0 bytes")]           // bin 32
    [InlineData("c9-7f-ff-ff-ff-01", "exceeds the 1 bytes")]        // ext 32
    public void Lengths_larger_than_the_input_are_refused_before_allocating(string hex, string message)
    {
        byte[] bytes = Convert.FromHexString(hex.Replace("-", ""));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(bytes);
            switch (reader.NextType)
            {
                case MessagePackType.Array: reader.ReadArrayHeader(); break;
                case MessagePackType.Map: reader.ReadMapHeader(); break;
                case MessagePackType.String: reader.ReadString(); break;
                case MessagePackType.Binary: reader.ReadBinary(); break;
                default: reader.ReadExtension(out _); break;
            }
        });
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains(message, e.Message);
        Assert.True(allocated < 64 * 1024, $"allocated {allocated} bytes for a {bytes.Length}-byte input");
    }

    [Fact]
    public void Skip_handles_deep_nesting_without_recursion()
    {
        // 100,000 nested one-element arrays would overflow a recursive skipper's stack.
        var bytes = new byte[100_001];
        Array.Fill(bytes, (byte)0x91);
        bytes[^1] = 0xc0;
        var reader = new MessagePackReader(bytes);
        reader.Skip();
        Assert.True(reader.End);
    }

    [Fact]
    public void Formatters_refuse_nesting_beyond_the_limit()
    {
        // A value nested deeper than MaxDepth, read by a self-referencing formatter.
        var deep = new byte[MessagePackReader.MaxDepth + 2];
        Array.Fill(deep, (byte)0x91);
        deep[^1] = 0x90;
        var recursive = new RecursiveListFormatter();
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(deep);
            recursive.Deserialize(ref reader);
        });
        Assert.Contains("nested more than 64 levels", e.Message);
    }

    private sealed class RecursiveListFormatter : IMessagePackFormatter<List<object>>
    {
        public void Serialize(MessagePackWriter writer, List<object> value) => throw new NotSupportedException();

        public List<object> Deserialize(ref MessagePackReader reader)
        {
            int count = reader.ReadArrayHeader();
            reader.EnterNested();
            var list = new List<object>();
            for (int i = 0; i < count; i++) list.Add(Deserialize(ref reader));
            reader.LeaveNested();
            return list;
        }
    }

    [Theory]
    [InlineData("", "truncated")]
    [InlineData("cd-01", "truncated")]
    [InlineData("c1", "0xc1 is never used")]
    [InlineData("a1-61", "Expected an integer at byte 0 but found code 0xa1")]
    public void Malformed_input_names_the_byte(string hex, string message)
    {
        byte[] bytes = hex.Length == 0 ? Array.Empty<byte>() : Convert.FromHexString(hex.Replace("-", ""));
        var e = Assert.ThrowsAny<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(bytes);
            _ = reader.NextType;
            reader.ReadInt64();
        });
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Invalid_utf8_is_an_error_not_replacement_characters()
    {
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(new byte[] { 0xa2, 0xc3, 0x28 });
            reader.ReadString();
        });
        Assert.Contains("not valid UTF-8", e.Message);
    }

    [Fact]
    public void Integer_overflow_is_reported()
    {
        var w = new MessagePackWriter();
        w.Write(ulong.MaxValue);
        var e = Assert.Throws<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(w.WrittenSpan);
            reader.ReadInt64();
        });
        Assert.Contains("too large", e.Message);
        w.Clear();
        w.Write(long.MaxValue);
        Assert.Throws<MessagePackException>(() =>
        {
            var reader = new MessagePackReader(w.WrittenSpan);
            reader.ReadInt32();
        });
    }
}
