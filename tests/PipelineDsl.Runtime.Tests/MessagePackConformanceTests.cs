using System.Globalization;
using System.Numerics;
using System.Text.Json;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// The msgpack-test-suite: every listed encoding must decode to the value, and the writer must produce the
/// shortest listed encoding of the value's own family (an integer as an integer, a float as a float).
/// </summary>
public class MessagePackConformanceTests
{
    public static IEnumerable<object[]> Cases()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Conformance", "msgpack", "msgpack-test-suite.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        foreach (var group in doc.RootElement.EnumerateObject())
        {
            int i = 0;
            foreach (var entry in group.Value.EnumerateArray())
                yield return new object[] { $"{group.Name}#{i++}", entry.GetRawText() };
        }
    }

    [Fact]
    public void The_suite_is_vendored_and_complete()
    {
        var cases = Cases().ToList();
        Assert.Equal(85, cases.Count);
        Assert.Equal(15, cases.Select(c => ((string)c[0]).Split('#')[0]).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Every_listed_encoding_decodes_to_the_value(string name, string entryJson)
    {
        using var doc = JsonDocument.Parse(entryJson);
        var entry = doc.RootElement;
        foreach (var hex in entry.GetProperty("msgpack").EnumerateArray())
        {
            byte[] bytes = Hex(hex.GetString()!);
            var reader = new MessagePackReader(bytes);
            object? decoded = Decode(ref reader);
            Assert.True(reader.End, $"{name}: {hex} left bytes unread");
            AssertMatches(entry, decoded, $"{name} {hex}");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_writer_produces_the_shortest_listed_encoding(string name, string entryJson)
    {
        using var doc = JsonDocument.Parse(entryJson);
        var entry = doc.RootElement;
        var writer = new MessagePackWriter(1);
        bool isFloat = Encode(writer, entry);
        var listed = entry.GetProperty("msgpack").EnumerateArray().Select(e => e.GetString()!).ToList();
        // For numbers the family matters: 1 is listed as an int and as a float; the writer writes the int.
        var sameFamily = listed.Where(h => !IsNumber(entry) || IsFloatEncoding(h) == isFloat).ToList();
        string shortest = sameFamily.OrderBy(h => h.Length).First();
        string actual = BitConverter.ToString(writer.ToArray()).ToLowerInvariant();
        Assert.True(listed.Contains(actual), $"{name}: wrote {actual}, which is not listed ({string.Join(" ", listed)})");
        Assert.True(actual.Length == shortest.Length, $"{name}: wrote {actual} but {shortest} is shorter");
    }

    private static bool IsNumber(JsonElement entry) => entry.TryGetProperty("number", out _) || entry.TryGetProperty("bignum", out _);

    private static bool IsFloatEncoding(string hex) => hex.StartsWith("ca", StringComparison.Ordinal) || hex.StartsWith("cb", StringComparison.Ordinal);

    private static byte[] Hex(string hex) => hex.Length == 0 ? Array.Empty<byte>() : hex.Split('-').Select(h => byte.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Writes the entry's value; returns true when it was written as a float.</summary>
    private static bool Encode(MessagePackWriter w, JsonElement entry)
    {
        if (entry.TryGetProperty("nil", out _)) w.WriteNil();
        else if (entry.TryGetProperty("bool", out var b)) w.Write(b.GetBoolean());
        else if (entry.TryGetProperty("binary", out var bin)) w.WriteBinary(Hex(bin.GetString()!));
        else if (entry.TryGetProperty("bignum", out var big))
        {
            var value = BigInteger.Parse(big.GetString()!, CultureInfo.InvariantCulture);
            if (value > long.MaxValue) w.Write((ulong)value); else w.Write((long)value);
        }
        else if (entry.TryGetProperty("number", out var n)) return EncodeNumber(w, n);
        else if (entry.TryGetProperty("string", out var s)) w.Write(s.GetString());
        else if (entry.TryGetProperty("array", out var a)) EncodeJson(w, a);
        else if (entry.TryGetProperty("map", out var m)) EncodeJson(w, m);
        else if (entry.TryGetProperty("timestamp", out var t)) w.WriteTimestamp(t[0].GetInt64(), t[1].GetUInt32());
        else if (entry.TryGetProperty("ext", out var x)) w.WriteExtension((sbyte)x[0].GetInt32(), Hex(x[1].GetString()!));
        else throw new InvalidOperationException("unknown entry " + entry);
        return false;
    }

    private static bool EncodeNumber(MessagePackWriter w, JsonElement n)
    {
        if (n.TryGetInt64(out long l))
        {
            w.Write(l);
            return false;
        }

        w.Write(n.GetDouble());
        return true;
    }

    private static void EncodeJson(MessagePackWriter w, JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Array:
                w.WriteArrayHeader(e.GetArrayLength());
                foreach (var item in e.EnumerateArray()) EncodeJson(w, item);
                break;
            case JsonValueKind.Object:
                w.WriteMapHeader(e.EnumerateObject().Count());
                foreach (var p in e.EnumerateObject())
                {
                    w.Write(p.Name);
                    EncodeJson(w, p.Value);
                }

                break;
            case JsonValueKind.String: w.Write(e.GetString()); break;
            case JsonValueKind.Number: EncodeNumber(w, e); break;
            case JsonValueKind.True: w.Write(true); break;
            case JsonValueKind.False: w.Write(false); break;
            default: w.WriteNil(); break;
        }
    }

    private sealed record Timestamp(long Seconds, uint Nanoseconds);

    private sealed record Extension(sbyte Type, byte[] Data);

    private static object? Decode(ref MessagePackReader r)
    {
        switch (r.NextType)
        {
            case MessagePackType.Nil: r.ReadNil(); return null;
            case MessagePackType.Boolean: return r.ReadBoolean();
            case MessagePackType.Integer:
                // Peek: uint 64 above long.MaxValue needs the unsigned read.
                var copy = r;
                try { return (BigInteger)r.ReadInt64(); }
                catch (MessagePackException) { r = copy; return (BigInteger)r.ReadUInt64(); }
            case MessagePackType.Float: return r.ReadDouble();
            case MessagePackType.String: return r.ReadString();
            case MessagePackType.Binary: return r.ReadBinary();
            case MessagePackType.Array:
                int count = r.ReadArrayHeader();
                var list = new List<object?>();
                for (int i = 0; i < count; i++) list.Add(Decode(ref r));
                return list;
            case MessagePackType.Map:
                int pairs = r.ReadMapHeader();
                var map = new Dictionary<string, object?>();
                for (int i = 0; i < pairs; i++) map.Add(r.ReadString()!, Decode(ref r));
                return map;
            case MessagePackType.Extension:
                var peek = r;
                peek.ReadExtension(out sbyte type);
                if (type == -1)
                {
                    var (s, ns) = r.ReadTimestamp();
                    return new Timestamp(s, ns);
                }

                var data = r.ReadExtension(out type).ToArray();
                return new Extension(type, data);
            default:
                throw new InvalidOperationException();
        }
    }

    private static void AssertMatches(JsonElement entry, object? decoded, string where)
    {
        if (entry.TryGetProperty("nil", out _)) Assert.Null(decoded);
        else if (entry.TryGetProperty("bool", out var b)) Assert.Equal(b.GetBoolean(), decoded);
        else if (entry.TryGetProperty("binary", out var bin)) Assert.Equal(Hex(bin.GetString()!), (byte[])decoded!);
        else if (entry.TryGetProperty("bignum", out var big) || entry.TryGetProperty("number", out big))
        {
            var expected = big.ValueKind == JsonValueKind.String ? BigInteger.Parse(big.GetString()!, CultureInfo.InvariantCulture) : (BigInteger?)null;
            switch (decoded)
            {
                case BigInteger i when expected is not null: Assert.Equal(expected.Value, i); break;
                case BigInteger i: Assert.Equal(big.GetDouble(), (double)i); break;
                case double d when expected is not null: Assert.Equal((double)expected.Value, d); break;
                case double d: Assert.Equal(big.GetDouble(), d); break;
                default: Assert.Fail($"{where}: decoded {decoded}, not a number"); break;
            }
        }
        else if (entry.TryGetProperty("string", out var s)) Assert.Equal(s.GetString(), decoded);
        else if (entry.TryGetProperty("array", out var a)) AssertJson(a, decoded, where);
        else if (entry.TryGetProperty("map", out var m)) AssertJson(m, decoded, where);
        else if (entry.TryGetProperty("timestamp", out var t)) Assert.Equal(new Timestamp(t[0].GetInt64(), t[1].GetUInt32()), decoded);
        else if (entry.TryGetProperty("ext", out var x))
        {
            var ext = Assert.IsType<Extension>(decoded);
            Assert.Equal((sbyte)x[0].GetInt32(), ext.Type);
            Assert.Equal(Hex(x[1].GetString()!), ext.Data);
        }
        else Assert.Fail("unknown entry " + entry);
    }

    private static void AssertJson(JsonElement expected, object? actual, string where)
    {
        switch (expected.ValueKind)
        {
            case JsonValueKind.Array:
                var list = Assert.IsType<List<object?>>(actual);
                Assert.Equal(expected.GetArrayLength(), list.Count);
                int i = 0;
                foreach (var item in expected.EnumerateArray()) AssertJson(item, list[i++], where);
                break;
            case JsonValueKind.Object:
                var map = Assert.IsType<Dictionary<string, object?>>(actual);
                Assert.Equal(expected.EnumerateObject().Count(), map.Count);
                foreach (var p in expected.EnumerateObject()) AssertJson(p.Value, map[p.Name], where);
                break;
            case JsonValueKind.String: Assert.Equal(expected.GetString(), actual); break;
            case JsonValueKind.Number: Assert.Equal(new BigInteger(expected.GetInt64()), actual); break;
            default: Assert.Fail($"{where}: unexpected {expected.ValueKind}"); break;
        }
    }
}
