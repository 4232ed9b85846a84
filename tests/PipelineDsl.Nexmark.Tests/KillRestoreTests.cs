using System.Diagnostics;
using System.Reflection;

namespace PipelineDsl.Nexmark.Tests;

/// <summary>
/// The sample runs each query as a real process over the first 1,000,000 canonical events; the test kills it
/// with SIGKILL in the middle of the run, starts it again on the same checkpoint and output, and compares the
/// output with the plain reference: nothing lost, nothing twice, windows and joins restored exactly.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public class KillRestoreTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly string Sample = typeof(KillRestoreTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "SampleAssembly").Value!;

    public static IEnumerable<object[]> Queries => new[] { "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q15", "q16", "q17", "q18", "q19", "q20", "q23" }.Select(q => new object[] { q });

    /// <summary>
    /// The queries whose state is keyed state, join buffers and sessions (and a watermark): on the RocksDB backend all of
    /// it but the watermark is in RocksDB.
    /// </summary>
    public static IEnumerable<object[]> RocksDbQueries => new[] { "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q11", "q12", "q15", "q16", "q17", "q18", "q19", "q20", "q23" }.Select(q => new object[] { q });

    [Theory]
    [MemberData(nameof(Queries))]
    public Task KilledMidRunAndRestoredTheOutputEqualsTheReference(string query) => KillAndRestoreAsync(query, rocksdb: false);

    [Theory]
    [MemberData(nameof(RocksDbQueries))]
    public Task OnRocksDbKilledMidRunAndRestoredTheOutputEqualsTheReference(string query) => KillAndRestoreAsync(query, rocksdb: true);

    private async Task KillAndRestoreAsync(string query, bool rocksdb)
    {
        using var dir = new TempDir();
        // A query runs 1,000,000 events in about a second, faster than a busy test host polls: the first run
        // pauses after each batch so that the kill lands mid-run (without it, q3, q4 and q11 sometimes finished first).
        // q23 keeps every bid in its join state: in smaller batches its many snapshots (each rewriting all of it) would
        // take minutes.
        int batchEvents = query switch { "q0" or "q1" or "q2" => 2_000, "q23" => 50_000, _ => 5_000 };
        int batches = (int)(QueryTests.Events / batchEvents);
        string[] args =
        {
            "--query", query, "--events", QueryTests.Events.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--batch-events", batchEvents.ToString(System.Globalization.CultureInfo.InvariantCulture), "--checkpoint-interval", "4",
            "--checkpoint", Path.Combine(dir.Path, "checkpoint"), "--output", Path.Combine(dir.Path, "out"), "--quiet",
        };
        if (rocksdb) args = args.Concat(new[] { "--rocksdb", Path.Combine(dir.Path, "rocksdb") }).ToArray();

        // Kill after a random number of committed batches (so sometimes after a snapshot, sometimes between).
        int killAfter = TestRandom.Create(20261130 + int.Parse(query[1..], System.Globalization.CultureInfo.InvariantCulture), log, "the kill point").Next(5, batches / 2);
        using var first = Start(args.Concat(new[] { "--pause-ms", "10" }).ToArray());
        string commits = Path.Combine(dir.Path, "checkpoint", "commits");
        var waited = Stopwatch.StartNew();
        while (!first.HasExited && LastCommitted(commits) < killAfter && waited.Elapsed < TimeSpan.FromSeconds(120))
            await Task.Delay(2);
        if (first.HasExited) Assert.Fail($"{query} finished before it could be killed: {first.Stderr}");
        long killedAt = waited.ElapsedMilliseconds;
        first.KillHard();
        int firstExit = first.WaitForExit(TimeSpan.FromSeconds(30));
        Assert.True(firstExit == 137 || firstExit == -9, $"{query}: the first run was not killed (exit code {firstExit})");
        long committed = LastCommitted(commits);
        Assert.True(committed < batches - 1, $"{query} was killed after its last batch (batch {committed} committed; meant after {killAfter}, killed at {killedAt} ms, exited at {waited.ElapsedMilliseconds} ms)");

        using var second = Start(args);
        int secondExit = second.WaitForExit(TimeSpan.FromMinutes(5));
        Assert.True(secondExit == 0, $"{query} restart failed ({secondExit}): {second.Stderr}");

        var output = QueryOutputs.Read(Path.Combine(dir.Path, "out"));
        if (query == "q12") AssertProcessingTimeCounts(output);
        else QueryOutputs.AssertEqual(query, References.ByQuery[query](QueryTests.CanonicalEvents()).Select(r => r.ToCsv()).ToList(), output);
    }

    /// <summary>
    /// q12's windows depend on when each batch was planned, which a killed run does not fix in advance; what must hold
    /// whatever the times: every (bidder, window) once (a window replayed with a new time would count its bids in a
    /// second window, or fire twice), windows aligned to 10 s, and each bidder's counts adding up to its bids exactly.
    /// (QueryTests checks the exact windows against the batches' planned times.)
    /// </summary>
    private static void AssertProcessingTimeCounts(List<string> output)
    {
        var rows = output.Select(l => l.Split(',').Select(c => long.Parse(c, System.Globalization.CultureInfo.InvariantCulture)).ToArray()).ToList();
        Assert.NotEmpty(rows);
        var twice = rows.GroupBy(r => (r[0], r[2])).Where(g => g.Count() > 1).Select(g => g.Key).FirstOrDefault();
        Assert.True(twice == default, $"q12: bidder {twice.Item1}'s window at {twice.Item2} was emitted twice");
        Assert.All(rows, r => Assert.True(r[2] % 10_000 == 0 && r[3] - r[2] == 10_000, $"q12: [{r[2]}, {r[3]}) is not a 10 s window"));
        var expected = QueryTests.CanonicalEvents().Where(e => e.Bid is not null).GroupBy(e => e.Bid!.Bidder).ToDictionary(g => g.Key, g => (long)g.Count());
        var actual = rows.GroupBy(r => r[0]).ToDictionary(g => g.Key, g => g.Sum(r => r[1]));
        Assert.Equal(expected.OrderBy(p => p.Key), actual.OrderBy(p => p.Key));
    }

    /// <summary>The newest committed batch (commit files are named by batch id; retention deletes old ones).</summary>
    private static long LastCommitted(string commits)
    {
        if (!Directory.Exists(commits)) return -1;
        long last = -1;
        foreach (var file in Directory.GetFiles(commits))
        {
            if (long.TryParse(Path.GetFileName(file), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long batch))
                last = Math.Max(last, batch);
        }

        return last;
    }

    private static ChildProcess Start(string[] args) => ChildProcess.Start(Sample, args);
}
