using System.Text;
using PipelineDsl.Sinks;
using Xunit.Abstractions;

namespace PipelineDsl.Runtime.Tests;

/// <summary>
/// <see cref="PartitionedFileSink{T}"/>: records land in their partition's directory, files roll at the size limit, the
/// batch log lists exactly the durable files, a replay after a crash in the middle of a batch leaves the same bytes as
/// an uninterrupted run, and bad partitions are refused naming the record.
/// </summary>
public sealed class PartitionedFileSinkTests(ITestOutputHelper log)
{
    private sealed record Reading(string Day, string Minute, int Value);

    private static PartitionedFileSink<Reading> Sink(string directory, long maxFileBytes = 1 << 20) =>
        new(directory, r => PartitionedFileSink.PartitionPath(("dt", r.Day), ("hm", r.Minute)), r => $"{r.Day},{r.Minute},{r.Value}")
        {
            MaxFileBytes = maxFileBytes,
        };

    private static List<Reading> Readings(Random random, int count) =>
        Enumerable.Range(0, count).Select(i => new Reading($"2026-12-0{random.Next(1, 3)}", $"10:0{random.Next(3)}", i)).ToList();

    /// <summary>Every file under <paramref name="directory"/> (relative path to content), temporary files included.</summary>
    private static SortedDictionary<string, string> Tree(string directory) =>
        new(Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(directory, f).Replace(Path.DirectorySeparatorChar, '/'), f => File.ReadAllText(f, Encoding.UTF8)), StringComparer.Ordinal);

    [Fact]
    public async Task Records_land_in_their_partitions_in_order_files_roll_at_the_limit_and_the_log_lists_them()
    {
        using var dir = new TempDir();
        var readings = Readings(TestRandom.Create(20261202, log), 300);
        var sink = Sink(dir.Sub("out"), maxFileBytes: 200); // about 8 lines a file
        await sink.WriteBatchAsync(0, readings.Take(150).ToList(), default);
        await sink.WriteBatchAsync(1, readings.Skip(150).ToList(), default);
        await sink.WriteBatchAsync(2, Array.Empty<Reading>(), default);

        var files = PartitionedFileSink.CommittedFiles(dir.Sub("out"));
        var tree = Tree(dir.Sub("out"));
        Assert.Equal(tree.Keys.Where(k => !k.StartsWith('_')), files.Order(StringComparer.Ordinal));
        Assert.Contains("dt=2026-12-01/hm=10%3A00/part-0000000000-00000.csv", files);
        Assert.Contains("dt=2026-12-02/hm=10%3A02/part-0000000001-00001.csv", files);
        Assert.DoesNotContain(files, f => f.Contains("part-0000000002", StringComparison.Ordinal)); // an empty batch writes nothing
        Assert.All(files, f => Assert.True(Encoding.UTF8.GetByteCount(tree[f]) <= 200, $"{f} passed the limit"));

        // Every record exactly once, in its partition, in batch and record order within it.
        foreach (var group in readings.GroupBy(r => (r.Day, r.Minute)))
        {
            string prefix = $"dt={group.Key.Day}/hm={group.Key.Minute.Replace(":", "%3A", StringComparison.Ordinal)}/";
            var lines = files.Where(f => f.StartsWith(prefix, StringComparison.Ordinal)).SelectMany(f => tree[f].Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Equal(group.Select(r => $"{r.Day},{r.Minute},{r.Value}"), lines);
        }
    }

    [Fact]
    public async Task A_replay_after_a_crash_in_the_middle_of_a_batch_leaves_exactly_the_uninterrupted_runs_files()
    {
        using var dir = new TempDir();
        var readings = Readings(TestRandom.Create(20261203, log), 400);
        var batches = readings.Chunk(100).ToList();

        var uninterrupted = Sink(dir.Sub("reference"), maxFileBytes: 300);
        for (int b = 0; b < batches.Count; b++) await uninterrupted.WriteBatchAsync(b, batches[b], default);

        // Batch 2 was being written when the process died: some of its files are there, one only as a temporary
        // file, and its log entry is missing. The restarted process replays batch 2 (same records) and goes on.
        var crashed = Sink(dir.Sub("out"), maxFileBytes: 300);
        for (int b = 0; b < 3; b++) await crashed.WriteBatchAsync(b, batches[b], default);
        string outDir = dir.Sub("out");
        File.Delete(Path.Combine(outDir, PartitionedFileSink.BatchLogFolder, "0000000002"));
        var ofBatch2 = Directory.GetFiles(outDir, "part-0000000002-*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        Assert.True(ofBatch2.Count >= 3, "batch 2 wrote too few files for the test");
        string interrupted = ofBatch2[1];
        File.Move(interrupted, Path.Combine(Path.GetDirectoryName(interrupted)!, "." + Path.GetFileName(interrupted) + ".tmp-0123456789abcdef"));
        File.WriteAllText(ofBatch2[2], "half a fi", Encoding.UTF8);
        Assert.DoesNotContain(PartitionedFileSink.CommittedFiles(outDir), f => f.Contains("part-0000000002", StringComparison.Ordinal));

        var restarted = Sink(outDir, maxFileBytes: 300);
        for (int b = 2; b < batches.Count; b++) await restarted.WriteBatchAsync(b, batches[b], default);

        Assert.Equal(Tree(dir.Sub("reference")), Tree(outDir));
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("/abs/x", "is not a relative path")]
    [InlineData("a/../b", "contains '.' or '..'")]
    [InlineData("a//b", "empty directory name")]
    [InlineData("_batches", "starting with '.' or '_'")]
    [InlineData("a\\b", "contains '\\'")]
    public async Task A_bad_partition_is_refused_naming_the_record_and_the_batch_and_nothing_of_the_batch_is_written(string partition, string problem)
    {
        using var dir = new TempDir();
        var sink = new PartitionedFileSink<int>(dir.Sub("out"), i => i == 1 ? partition : "ok=1", i => i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var error = await Assert.ThrowsAsync<ArgumentException>(() => sink.WriteBatchAsync(7, new[] { 0, 1, 2 }, default));
        Assert.Contains($"record 1 of batch 7", error.Message);
        Assert.Contains(problem, error.Message);
        Assert.False(Directory.Exists(dir.Sub("out")) && Directory.EnumerateFiles(dir.Sub("out"), "*", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public void Partition_values_are_escaped_for_every_file_system_and_unescape_to_themselves()
    {
        var random = TestRandom.Create(20261204, log);
        const string alphabet = "ab:/\\%=?*#'\"[]{}^ é\t-_.0";
        for (int i = 0; i < 500; i++)
        {
            string value = new(Enumerable.Range(0, random.Next(1, 12)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
            string path = PartitionedFileSink.PartitionPath(("k", value));
            Assert.Equal(value, PartitionedFileSink.UnescapePartitionValue(path["k=".Length..]));
            Assert.DoesNotContain(path["k=".Length..], c => c is '/' or '\\' or ':' or '*' or '?' or '"' or '\t' or '=');
        }

        Assert.Equal("dt=2015-07-15/hm=00%3A01", PartitionedFileSink.PartitionPath(("dt", "2015-07-15"), ("hm", "00:01")));
        Assert.Equal("k=__DEFAULT_PARTITION__", PartitionedFileSink.PartitionPath(("k", "")));
    }

    [Fact]
    public void Bad_settings_are_refused_naming_the_setting()
    {
        Assert.Contains("MaxFileBytes", Assert.Throws<ArgumentOutOfRangeException>(() => new PartitionedFileSink<int>("x", _ => "a=1", _ => "") { MaxFileBytes = 0 }).Message);
        Assert.Contains("extension", Assert.Throws<ArgumentException>(() => new PartitionedFileSink<int>("x", _ => "a=1", _ => "", ".csv")).Message);
        Assert.Contains("directory", Assert.Throws<ArgumentException>(() => new PartitionedFileSink<int>(" ", _ => "a=1", _ => "")).Message);
    }
}
