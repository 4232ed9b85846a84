using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>
/// Orders keys by their serialized bytes: a total order that does not depend on hash codes (randomized per
/// process for strings) or on insertion order, so outputs that enumerate keys are the same after a restore.
/// </summary>
internal static class KeyOrder
{
    /// <summary>Sorts <paramref name="items"/> in place by the serialized bytes of their keys (keys are distinct).</summary>
    public static void Sort<TKey, TValue>(List<(TKey Key, TValue Value)> items, IMessagePackFormatter<TKey> formatter)
    {
        if (items.Count <= 1) return;
        var span = CollectionsMarshal.AsSpan(items);
        if (typeof(TKey) == typeof(long) && ReferenceEquals(formatter, MessagePackFormatters.Int64))
        {
            // The common case (ids), without serializing: see CompareAsMessagePack.
            span.Sort(static (a, b) => CompareAsMessagePack(Unsafe.As<TKey, long>(ref a.Key), Unsafe.As<TKey, long>(ref b.Key)));
            return;
        }

        // All keys into one buffer, then sort indexes by their byte ranges: no array per key.
        var writer = new MessagePackWriter(items.Count * 8);
        var ends = new int[items.Count];
        for (int i = 0; i < span.Length; i++)
        {
            formatter.Serialize(writer, span[i].Key);
            ends[i] = writer.Length;
        }

        var order = new int[items.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        var bytes = writer.WrittenMemory;
        Array.Sort(order, (x, y) =>
        {
            var all = bytes.Span;
            var a = all[(x == 0 ? 0 : ends[x - 1])..ends[x]];
            var b = all[(y == 0 ? 0 : ends[y - 1])..ends[y]];
            return a.SequenceCompareTo(b);
        });
        var copy = span.ToArray();
        for (int i = 0; i < order.Length; i++) span[i] = copy[order[i]];
    }

    /// <summary>Returns <paramref name="items"/>, sorted in place by <see cref="Sort"/>.</summary>
    public static List<(TKey Key, TValue Value)> Sorted<TKey, TValue>(List<(TKey Key, TValue Value)> items, IMessagePackFormatter<TKey> formatter)
    {
        Sort(items, formatter);
        return items;
    }

    /// <summary>
    /// Compares two longs as their MessagePack encodings compare byte by byte. The writer picks the shortest
    /// form, and first bytes order the forms: positive fixint 0x00-0x7f (the value itself), uint8-uint64
    /// 0xcc-0xcf, int8-int64 0xd0-0xd3, negative fixint 0xe0-0xff. Within one form the big-endian bytes
    /// order as the numbers do, so (first byte, number) orders as the bytes.
    /// </summary>
    internal static int CompareAsMessagePack(long a, long b)
    {
        int c = FirstByte(a).CompareTo(FirstByte(b));
        return c != 0 ? c : a.CompareTo(b);
    }

    private static int FirstByte(long v) => v switch
    {
        >= 0 and <= 0x7f => (int)v,
        >= 0 and <= byte.MaxValue => 0xcc,
        >= 0 and <= ushort.MaxValue => 0xcd,
        >= 0 and <= uint.MaxValue => 0xce,
        >= 0 => 0xcf,
        >= -32 => (byte)v,
        >= sbyte.MinValue => 0xd0,
        >= short.MinValue => 0xd1,
        >= int.MinValue => 0xd2,
        _ => 0xd3,
    };
}
