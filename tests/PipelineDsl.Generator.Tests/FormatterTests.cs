using System.Reflection;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Generated formatters: round trips, plain MessagePack on the wire, and tolerance between versions of a
/// contract (renamed, added and removed fields) — bytes written by one build read by another.
/// </summary>
public class FormatterTests
{
    // Each version of the contract comes with a probe that writes a sample and reads bytes back.
    private const string V1 = """
        using System.Collections.Generic;
        using PipelineDsl;
        using PipelineDsl.Serialization;

        [StateContract]
        public partial class Account
        {
            [Field(0)] public string Owner { get; set; } = "";
            [Field(1)] public long Balance { get; set; }
            [Field(2)] public List<string> History { get; set; } = new();
            [Field(3)] public int Retired { get; set; }
        }

        public static class Probe
        {
            public static byte[] Write()
            {
                var writer = new MessagePackWriter();
                Account.MessagePackFormatter.Serialize(writer, new Account { Owner = "ann", Balance = -5, History = new() { "open", "deposit" }, Retired = 9 });
                return writer.ToArray();
            }

            public static string Read(byte[] bytes)
            {
                var reader = new MessagePackReader(bytes);
                var a = Account.MessagePackFormatter.Deserialize(ref reader);
                return $"{a.Owner}|{a.Balance}|{string.Join(",", a.History)}|{a.Retired}";
            }
        }
        """;

    // V2: Owner renamed to Holder (same key), Retired removed (key 3 dropped), Tags added with an initializer.
    private const string V2 = """
        using System.Collections.Generic;
        using PipelineDsl;
        using PipelineDsl.Serialization;

        [StateContract]
        public partial class Account
        {
            [Field(0)] public string Holder { get; set; } = "";
            [Field(1)] public long Balance { get; set; }
            [Field(2)] public List<string> History { get; set; } = new();
            [Field(4)] public List<string> Tags { get; set; } = new() { "default-tag" };
        }

        public static class Probe
        {
            public static byte[] Write()
            {
                var writer = new MessagePackWriter();
                Account.MessagePackFormatter.Serialize(writer, new Account { Holder = "bob", Balance = 7, Tags = new() { "vip" } });
                return writer.ToArray();
            }

            public static string Read(byte[] bytes)
            {
                var reader = new MessagePackReader(bytes);
                var a = Account.MessagePackFormatter.Deserialize(ref reader);
                return $"{a.Holder}|{a.Balance}|{string.Join(",", a.History)}|{string.Join(",", a.Tags)}";
            }
        }
        """;

    private static (Func<byte[]> Write, Func<byte[], string> Read) ProbeOf(string source)
    {
        var probe = GeneratorHarness.Load(source).GetType("Probe")!;
        var write = probe.GetMethod("Write")!;
        var read = probe.GetMethod("Read")!;
        return (() => (byte[])write.Invoke(null, null)!, bytes => (string)read.Invoke(null, new object[] { bytes })!);
    }

    [Fact]
    public void Round_trip()
    {
        var v1 = ProbeOf(V1);
        Assert.Equal("ann|-5|open,deposit|9", v1.Read(v1.Write()));
    }

    [Fact]
    public void Wire_format_is_a_plain_map_from_field_key_to_value()
    {
        var bytes = ProbeOf(V1).Write();
        // 84 = map of 4; keys 0..3 as fixints; "ann" = a3 61 6e 6e; -5 = fb; array of 2 strings; 9.
        Assert.Equal(
            "84-00-A3-61-6E-6E-01-FB-02-92-A4-6F-70-65-6E-A7-64-65-70-6F-73-69-74-03-09",
            BitConverter.ToString(bytes));
    }

    [Fact]
    public void New_build_reads_old_bytes_renamed_field_kept_removed_field_skipped_added_field_keeps_its_initializer()
    {
        var old = ProbeOf(V1).Write();
        Assert.Equal("ann|-5|open,deposit|default-tag", ProbeOf(V2).Read(old));
    }

    [Fact]
    public void Old_build_reads_new_bytes_skipping_the_unknown_field()
    {
        var newer = ProbeOf(V2).Write();
        Assert.Equal("bob|7||0", ProbeOf(V1).Read(newer));
    }

    [Fact]
    public void Truncated_bytes_fail_with_a_clear_error_not_garbage()
    {
        var v1 = ProbeOf(V1);
        var bytes = v1.Write();
        var e = Assert.Throws<TargetInvocationException>(() => v1.Read(bytes[..^3]));
        Assert.IsType<PipelineDsl.Serialization.MessagePackException>(e.InnerException);
        Assert.Contains("truncated", e.InnerException!.Message);
    }

    [Fact]
    public void Positional_record_contract_round_trips_through_its_constructor()
    {
        const string source = """
            using PipelineDsl;
            using PipelineDsl.Serialization;

            [StateContract]
            public sealed partial record Point([property: Field(0)] int X, [Field(1)] int Y, [property: Field(2)] string? Label);

            public static class Probe
            {
                public static byte[] Write()
                {
                    var writer = new MessagePackWriter();
                    Point.MessagePackFormatter.Serialize(writer, new Point(3, -4, null));
                    return writer.ToArray();
                }

                public static string Read(byte[] bytes)
                {
                    var reader = new MessagePackReader(bytes);
                    return Point.MessagePackFormatter.Deserialize(ref reader).ToString();
                }
            }
            """;
        var probe = ProbeOf(source);
        Assert.Equal("Point { X = 3, Y = -4, Label =  }", probe.Read(probe.Write()));
    }
}
