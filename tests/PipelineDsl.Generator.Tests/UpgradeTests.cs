using System.Reflection;

namespace PipelineDsl.Generator.Tests;

/// <summary>
/// Builds successive versions of one pipeline as separate compilations (separate assemblies, same pipeline
/// id) and restores each from the checkpoint the previous version wrote.
/// </summary>
public sealed class UpgradeTests : IDisposable
{
    private readonly string _checkpoint = Path.Combine(Path.GetTempPath(), "pdsl-upgrade-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_checkpoint)) Directory.Delete(_checkpoint, recursive: true);
    }

    private const string Harness = """
        global using System.Collections.Generic;
        global using System.Linq;
        global using System.Threading;
        global using System.Threading.Tasks;
        global using PipelineDsl;
        global using PipelineDsl.Sinks;
        global using PipelineDsl.Sources;

        public sealed record Hit(string User, long Value);

        public sealed class Collect<T> : ISinkConnector<T>
        {
            public readonly List<string> Lines = new();
            public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken ct)
            {
                foreach (var r in records) Lines.Add(batchId + ":" + r);
                return Task.CompletedTask;
            }
        }

        public static class Probe
        {
            // Runs the pipeline over hits 0..records-1 (10 per batch), available-now, on the given checkpoint.
            public static async Task<string> Run(string checkpoint, int records)
            {
                var source = new MemorySource<Hit>();
                source.Add(0, Enumerable.Range(0, records).Select(i => new Hit("u" + (i % 3), i)));
                var sink = new Collect<string>();
                await new PipelineRunner(Up.Definition, new PipelineRunnerOptions
                    {
                        CheckpointDirectory = checkpoint, Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 10, CheckpointInterval = 3,
                    })
                    .BindSource(Up.Hits(), source).BindSink(Up.Out(), sink).RunAsync();
                return string.Join("\n", sink.Lines);
            }
        }
        """;

    private const string V1 = """
        [StateContract]
        public partial class Tally { [Field(0)] public long Count { get; set; } }

        [Pipeline("upgrade-demo")]
        public static partial class Up
        {
            [Source("hits")] public static partial Source<Hit> Hits();

            [UpdateState("tally", From = "hits", Key = nameof(Hit.User))]
            public static string Count(string user, Hit h, KeyedState<Tally> s)
            {
                var t = s.Exists ? s.Value : new Tally();
                t.Count++;
                s.Update(t);
                return $"{user}={t.Count}";
            }

            [Sink("out", From = "tally")] public static partial Sink<string> Out();
        }
        """;

    // v2: the stage method is renamed, a stateless stage is added, the state gains a field, and the operator's
    // version is bumped with a migration from v1 (whose state type is kept under another name).
    private const string V2 = """
        [StateContract]
        public partial class TallyV1 { [Field(0)] public long Count { get; set; } }

        [StateContract]
        public partial class Tally { [Field(0)] public long Count { get; set; } [Field(1)] public long Sum { get; set; } }

        [Pipeline("upgrade-demo")]
        public static partial class Up
        {
            [Source("hits")] public static partial Source<Hit> Hits();

            [Filter("non-negative", From = "hits")] public static bool NonNegative(Hit h) => h.Value >= 0;

            [UpdateState("tally", From = "non-negative", Key = nameof(Hit.User), Version = 2)]
            public static string CountAndSum(string user, Hit h, KeyedState<Tally> s)
            {
                var t = s.Exists ? s.Value : new Tally();
                t.Count++;
                t.Sum += h.Value;
                s.Update(t);
                return $"{user}={t.Count}/{t.Sum}";
            }

            [StateMigration("tally", FromVersion = 1)]
            public static Tally FromV1(TallyV1 old) => new() { Count = old.Count, Sum = 1000 * old.Count };

            [Sink("out", From = "tally")] public static partial Sink<string> Out();
        }
        """;

    // v3: the count becomes a double average; migrations from 1 and from 2 chain.
    private const string V3 = """
        [StateContract]
        public partial class TallyV1 { [Field(0)] public long Count { get; set; } }

        [StateContract]
        public partial class TallyV2 { [Field(0)] public long Count { get; set; } [Field(1)] public long Sum { get; set; } }

        [StateContract]
        public partial record struct Tally([property: Field(0)] long Count, [property: Field(2)] double Mean);

        [Pipeline("upgrade-demo")]
        public static partial class Up
        {
            [Source("hits")] public static partial Source<Hit> Hits();

            [UpdateState("tally", From = "hits", Key = nameof(Hit.User), Version = 3)]
            public static string Mean(string user, Hit h, KeyedState<Tally> s)
            {
                var t = s.Value;
                long n = t.Count + 1;
                var next = new Tally(n, t.Mean + (h.Value - t.Mean) / n);
                s.Update(next);
                return $"{user}={next.Count}~{next.Mean:F1}";
            }

            [StateMigration("tally", FromVersion = 1)]
            public static TallyV2 FromV1(TallyV1 old) => new() { Count = old.Count, Sum = 0 };

            [StateMigration("tally", FromVersion = 2)]
            public static Tally FromV2(TallyV2 old) => new(old.Count, old.Count == 0 ? 0 : (double)old.Sum / old.Count);

            [Sink("out", From = "tally")] public static partial Sink<string> Out();
        }
        """;

    private async Task<string> Run(string version, int records)
    {
        var probe = GeneratorHarness.Load(Harness, version).GetType("Probe")!.GetMethod("Run")!;
        try
        {
            return await (Task<string>)probe.Invoke(null, new object[] { _checkpoint, records })!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }

    private static string[] Lines(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>
    /// The reference for v2 over hits 50..79 after v1 processed hits 0..49: v1's counts carried over, Sum
    /// started at 1000 x count by the migration, then the real sums, 10 hits per batch from batch 5.
    /// </summary>
    private static List<string> ExpectedV2AfterV1()
    {
        var count = new Dictionary<string, long>();
        for (int i = 0; i < 50; i++) count["u" + (i % 3)] = count.GetValueOrDefault("u" + (i % 3)) + 1;
        var sum = count.ToDictionary(p => p.Key, p => 1000 * p.Value);
        var expected = new List<string>();
        for (int i = 50; i < 80; i++)
        {
            string u = "u" + (i % 3);
            count[u]++;
            sum[u] += i;
            expected.Add($"{5 + (i - 50) / 10}:{u}={count[u]}/{sum[u]}");
        }

        return expected;
    }

    [Fact]
    public async Task Version_2_restores_version_1s_checkpoint_through_its_migration()
    {
        string v1 = await Run(V1, 50);
        Assert.Equal("4:u1=17", Lines(v1)[^1]); // hit 49 is user u1's 17th
        // On the RocksDB backend (PIPELINEDSL_TEST_STATE_BACKEND) the snapshots are its files: the migration below then
        // rewrites a RocksDB database, not entries.
        Assert.Equal(StateBackendSelection.Name == "rocksdb", Directory.Exists(Path.Combine(_checkpoint, "shared")));

        string v2 = await Run(V2, 80);
        var lines = Lines(v2);
        Assert.Equal(30, lines.Length); // only the new hits 50..79, in batches 5..7: nothing twice
        Assert.StartsWith("5:", lines[0]);
        Assert.Equal(ExpectedV2AfterV1(), lines);
    }

    [Fact]
    public async Task Version_2_after_a_crash_of_version_1_continues_from_its_exact_state()
    {
        await Run(V1, 50);
        // As if version 1 had been killed after batch 4 but before its final snapshot: the newest snapshot is
        // batch 2, and batches 3 and 4 survive only as the state deltas in their commit files.
        File.Delete(Path.Combine(_checkpoint, "state", 4L.ToString("D19")));
        Assert.True(File.Exists(Path.Combine(_checkpoint, "state", 2L.ToString("D19"))));

        // Replaying batches 3 and 4 with version 2's code would add their hit values to Sum; the deltas carry
        // version 1's state, migrated, so the result equals "v1 up to batch 4, then v2".
        var lines = Lines(await Run(V2, 80));
        Assert.Equal(ExpectedV2AfterV1(), lines);
    }

    [Fact]
    public async Task Three_versions_in_succession_and_a_chain_straight_from_version_1()
    {
        await Run(V1, 30);
        await Run(V2, 60);
        string v3 = await Run(V3, 70);
        // After v2: u0 has hits 0,3,...,57 = 20; v2 saw u0's hits 30..57 (10 of them): sum 1000*10 + 30+33+...+57 = 10435.
        Assert.Equal("6:u0=21~499.8", Lines(v3)[0]); // (10435 + 60) / 21

        // A fresh checkpoint written by v1 and restored by v3 goes through both migrations.
        Directory.Delete(_checkpoint, recursive: true);
        await Run(V1, 30);
        string direct = await Run(V3, 40);
        Assert.Equal("3:u0=11~2.7", Lines(direct)[0]); // 10 hits migrated with sum 0, then 30: (0 + 30) / 11
    }

    [Fact]
    public async Task Adding_a_field_with_a_new_key_needs_no_version_bump()
    {
        await Run(V1, 30);
        string v1b = V1.Replace("public partial class Tally { [Field(0)] public long Count { get; set; } }",
            "public partial class Tally { [Field(0)] public long Count { get; set; } [Field(5)] public List<string> Notes { get; set; } = new() { \"n\" }; }")
            .Replace("return $\"{user}={t.Count}\";", "return $\"{user}={t.Count}{t.Notes.Count}\";");
        Assert.Equal("3:u0=111", Lines(await Run(v1b, 31))[0]); // count 11, and the new field kept its initializer
    }

    [Fact]
    public async Task An_incompatible_change_at_the_same_version_is_refused_operator_by_operator()
    {
        await Run(V1, 30);
        string retyped = V1.Replace("[Field(0)] public long Count { get; set; }", "[Field(0)] public string Count { get; set; } = \"\";")
            .Replace("t.Count++;", "t.Count += \"x\";");
        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Run(retyped, 40));
        Assert.Equal(
            "operator 'tally': its state schema changed incompatibly at version 1: field 0 was int64 and is now string. Bump its Version and add a [StateMigration(\"tally\", FromVersion = 1)] method, or declare [DiscardState(\"tally\", FromVersion = 1)].",
            Assert.Single(e.Operators));
        Assert.Contains("Nothing was changed", e.Message);
        Assert.Equal("3:u0=11", Lines(await Run(V1, 31))[0]); // and the checkpoint still works with v1
    }

    [Fact]
    public async Task State_held_only_in_deltas_is_checked_like_a_snapshot_never_silently_replayed()
    {
        await Run(V1, 30);
        foreach (var f in Directory.GetFiles(Path.Combine(_checkpoint, "state"))) File.Delete(f); // only the commit deltas hold state now
        string retyped = V1.Replace("[Field(0)] public long Count { get; set; }", "[Field(0)] public string Count { get; set; } = \"\";")
            .Replace("t.Count++;", "t.Count += \"x\";");
        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Run(retyped, 40));
        Assert.Contains("operator 'tally': its state schema changed incompatibly at version 1: field 0 was int64 and is now string", e.Message);
        Assert.Equal("3:u0=11", Lines(await Run(V1, 31))[0]); // the original build restores from the deltas alone
    }

    [Fact]
    public async Task A_version_bump_needs_a_migration_or_an_explicit_discard()
    {
        await Run(V1, 30);
        string bumped = V1.Replace("Key = nameof(Hit.User))]", "Key = nameof(Hit.User), Version = 2)]");
        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Run(bumped, 40));
        Assert.Contains("operator 'tally' is at version 2 but the checkpoint holds its state at version 1. Add a [StateMigration(\"tally\", FromVersion = 1)] method, or declare [DiscardState(\"tally\", FromVersion = 1)] to start it empty.", e.Message);

        string discarding = bumped.Replace("[Pipeline(\"upgrade-demo\")]", "[Pipeline(\"upgrade-demo\")]\n[DiscardState(\"tally\", FromVersion = 1)]");
        Assert.Equal("3:u0=1", Lines(await Run(discarding, 31))[0]); // started empty, on purpose
    }

    [Fact]
    public async Task A_removed_stateful_operator_must_be_retired_explicitly()
    {
        await Run(V1, 30);
        const string withoutTally = """
            [Pipeline("upgrade-demo")]
            public static partial class Up
            {
                [Source("hits")] public static partial Source<Hit> Hits();

                [Map("describe", From = "hits")] public static string Describe(Hit h) => h.User + "@" + h.Value;

                [Sink("out", From = "describe")] public static partial Sink<string> Out();
            }
            """;
        var e = await Assert.ThrowsAsync<CheckpointIncompatibleException>(() => Run(withoutTally, 40));
        Assert.Contains("operator 'tally' holds state in the checkpoint but is not in this build. Declare [RetiredOperator(\"tally\")]", e.Message);

        string retiring = withoutTally.Replace("[Pipeline(\"upgrade-demo\")]", "[Pipeline(\"upgrade-demo\")]\n[RetiredOperator(\"tally\")]");
        Assert.Equal("3:u0@30", Lines(await Run(retiring, 31))[0]);
    }
}
