using PipelineDsl.CompilerServices;
using PipelineDsl.Execution;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// Windows emit their keys ordered by the keys' serialized bytes. Long keys are compared without serializing;
/// these tests hold that shortcut to the definition.
/// </summary>
public class KeyOrderTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static byte[] Serialize<T>(IMessagePackFormatter<T> formatter, T value)
    {
        var w = new MessagePackWriter();
        formatter.Serialize(w, value);
        return w.ToArray();
    }

    private static List<T> ByBytes<T>(IEnumerable<T> keys, IMessagePackFormatter<T> formatter) =>
        keys.Select(k => (Key: k, Bytes: Serialize(formatter, k)))
            .OrderBy(x => x.Bytes, Comparer<byte[]>.Create((a, b) => a.AsSpan().SequenceCompareTo(b)))
            .Select(x => x.Key)
            .ToList();

    [Fact]
    public void Long_keys_sort_as_their_MessagePack_bytes_across_every_encoding_boundary()
    {
        var boundaries = new long[] { 0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, uint.MaxValue, (long)uint.MaxValue + 1, long.MaxValue, -1, -31, -32, -33, -127, -128, -129, short.MinValue, short.MinValue - 1, int.MinValue, (long)int.MinValue - 1, long.MinValue };
        var random = TestRandom.Create(7, log);
        var keys = boundaries.Concat(Enumerable.Range(0, 2000).Select(_ => random.NextInt64(long.MinValue, long.MaxValue) >> random.Next(64))).Distinct().ToList();
        var items = keys.Select(k => (Key: k, Value: k.ToString())).Reverse().ToList();

        KeyOrder.Sort(items, MessagePackFormatters.Int64);

        Assert.Equal(ByBytes(keys, MessagePackFormatters.Int64), items.Select(i => i.Key));
        Assert.All(items, i => Assert.Equal(i.Key.ToString(), i.Value)); // values travel with their keys
    }

    [Fact]
    public void Other_keys_sort_by_their_serialized_bytes()
    {
        var keys = new[] { "b", "a", "ab", "", "zz", "é", new string('x', 40), "A" };
        var items = keys.Select(k => (Key: k, Value: k.Length)).ToList();

        KeyOrder.Sort(items, MessagePackFormatters.String!);

        Assert.Equal(ByBytes(keys, MessagePackFormatters.String!), items.Select(i => i.Key));
        Assert.All(items, i => Assert.Equal(i.Key.Length, i.Value));
    }
}
