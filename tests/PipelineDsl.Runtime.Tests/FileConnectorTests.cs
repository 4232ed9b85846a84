using System.Text;
using PipelineDsl.Checkpointing;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Runtime.Tests;

public class FileConnectorTests
{
    private static Event Parse(string line)
    {
        var parts = line.Split(',');
        if (parts.Length != 2) throw new FormatException($"expected 'user,value' but found {parts.Length} fields");
        return new Event(parts[0], long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static PipelineRunner Runner(TempDir dir, string input, ISinkConnector<Total?> sink, BadRecordPolicy policy = BadRecordPolicy.Fail,
        long? perPartition = null, TriggerMode trigger = TriggerMode.AvailableNow, FileDirectorySourceOptions? sourceOptions = null) =>
        new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions
            {
                CheckpointDirectory = dir.Sub("checkpoint"),
                Trigger = trigger,
                BadRecordPolicy = policy,
                MaxRecordsPerPartition = perPartition,
            })
            .BindSource(RunningTotals.Events(), new FileDirectorySource<Event>(input, Parse, sourceOptions))
            .BindSink(RunningTotals.Out(), sink);

    [Fact]
    public async Task A_half_written_last_line_waits_until_it_is_complete()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu1,2\nu2,");
        var sink = new CollectingSink<Total?>();
        await Runner(dir, input, sink).RunAsync();
        Assert.Equal(new[] { new Total("u1", 2, 1), new Total("u1", 6, 2) }, sink.All);

        File.AppendAllText(Path.Combine(input, "a.csv"), "5\n");
        File.WriteAllText(Path.Combine(input, "b.csv"), "u3,1\r\n\r\n");
        File.WriteAllText(Path.Combine(input, ".hidden.csv"), "u9,9\n");
        await Runner(dir, input, sink).RunAsync();
        Assert.Equal(new[] { new Total("u1", 2, 1), new Total("u1", 6, 2), new Total("u2", 10, 1), new Total("u3", 2, 1) }, sink.All);
    }

    [Fact]
    public async Task The_cap_splits_files_into_batches_on_line_boundaries()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), string.Concat(Enumerable.Range(1, 25).Select(i => $"u{i % 3},{i}\n")));
        var sink = new CollectingSink<Total?>();
        var summary = await Runner(dir, input, sink, perPartition: 10).RunAsync();
        Assert.Equal(3, summary.BatchesRun);
        Assert.Equal(new[] { 10, 10, 5 }, sink.Batches.Values.Select(b => b.Count));
    }

    [Fact]
    public async Task A_malformed_record_fails_the_batch_naming_source_partition_and_position()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu2,not-a-number\nu3,3\n");
        var sink = new CollectingSink<Total?>();
        var e = await Assert.ThrowsAsync<BadRecordException>(() => Runner(dir, input, sink).RunAsync());
        Assert.Equal("events", e.SourceId);
        Assert.Equal("a.csv", e.Partition);
        Assert.Equal(5, e.Position);
        Assert.Contains("Source 'events', partition 'a.csv', position 5: cannot decode the record \"u2,not-a-number\"", e.Message);
        Assert.Contains("BadRecordPolicy = DeadLetter", e.Message);
        Assert.Empty(sink.All); // nothing of the failed batch was delivered

        // Fixing the file lets the same batch (same logged range) go through: nothing accepted is lost.
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu2,000000000002\nu3,3\n");
        await Runner(dir, input, sink).RunAsync();
        Assert.Equal(new[] { new Total("u1", 2, 1), new Total("u2", 4, 1), new Total("u3", 6, 1) }, sink.All);
    }

    [Fact]
    public async Task Dead_letter_policy_sets_bad_records_aside_with_their_context()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nbroken\nu3,3\n");
        var sink = new CollectingSink<Total?>();
        var progress = new List<BatchProgress>();
        var runner = Runner(dir, input, sink, BadRecordPolicy.DeadLetter);
        runner.BatchCompleted += progress.Add;
        await runner.RunAsync();
        Assert.Equal(new[] { new Total("u1", 2, 1), new Total("u3", 6, 1) }, sink.All);
        Assert.Equal(1, progress.Single().DeadLetters);
        string letters = File.ReadAllText(Path.Combine(dir.Sub("checkpoint"), "dead-letter", "batch-0000000000.jsonl"));
        Assert.Equal("{\"source\":\"events\",\"partition\":\"a.csv\",\"position\":5,\"error\":\"expected \\u0027user,value\\u0027 but found 1 fields\",\"record\":\"broken\"}\n", letters);
    }

    [Fact]
    public async Task Dead_letters_live_in_the_checkpoint_store_wherever_it_is()
    {
        // They were written under Path.Combine(store.Location, ...): with the in-memory store, into a folder
        // named "memory" in the working directory, outside any checkpoint.
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nbroken\n");
        var store = new InMemoryCheckpointStore();
        await new PipelineRunner(RunningTotals.Definition, new PipelineRunnerOptions { CheckpointStore = store, Trigger = TriggerMode.AvailableNow, BadRecordPolicy = BadRecordPolicy.DeadLetter })
            .BindSource(RunningTotals.Events(), new FileDirectorySource<Event>(input, Parse))
            .BindSink(RunningTotals.Out(), new CollectingSink<Total?>())
            .RunAsync();
        var letters = await store.ReadAsync("dead-letter/batch-0000000000.jsonl", CancellationToken.None);
        Assert.NotNull(letters);
        Assert.Contains("\"record\":\"broken\"", System.Text.Encoding.UTF8.GetString(letters!));
        Assert.False(Directory.Exists(Path.Combine(Directory.GetCurrentDirectory(), store.Location, "dead-letter")));
    }

    [Fact]
    public async Task A_missing_input_directory_is_a_clear_error()
    {
        using var dir = new TempDir();
        var e = await Assert.ThrowsAsync<DirectoryNotFoundException>(() => Runner(dir, dir.Sub("nope"), new CollectingSink<Total?>()).RunAsync());
        Assert.Contains($"The input directory '{dir.Sub("nope")}' does not exist", e.Message);
    }

    [Theory]
    [InlineData(TriggerMode.Continuous)]
    [InlineData(TriggerMode.AvailableNow)] // bounded runs ignored a shrunk file, then resumed at the stale position when it grew again
    public async Task A_truncated_input_file_is_reported_not_misread(TriggerMode trigger)
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu1,2\n");
        await Runner(dir, input, new CollectingSink<Total?>()).RunAsync();
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\n");
        var runner = Runner(dir, input, new CollectingSink<Total?>(), trigger: trigger);
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => runner.RunAsync());
        Assert.Contains("partition 'a.csv': the data now ends at position 5, before position 10, which earlier batches already processed", e.Message);
    }

    [Fact]
    public async Task A_bounded_run_reports_a_last_line_without_its_newline_as_unread_and_reads_it_once_completed()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu1,2\nu2,3");
        File.WriteAllText(Path.Combine(input, "b.csv"), "u3,1\n");
        var sink = new CollectingSink<Total?>();
        var summary = await Runner(dir, input, sink).RunAsync();
        Assert.Equal(3, summary.InputRecords);
        var tail = Assert.Single(summary.UnreadTails!);
        Assert.Equal(new UnreadTail("events", "a.csv", 10, 4), tail);

        File.AppendAllText(Path.Combine(input, "a.csv"), "\n");
        summary = await Runner(dir, input, sink).RunAsync();
        Assert.Equal(1, summary.InputRecords);
        Assert.Empty(summary.UnreadTails!);
        Assert.Contains(new Total("u2", 6, 1), sink.All);
    }

    [Fact]
    public async Task A_file_rewritten_with_more_data_than_was_read_is_reported_not_misread()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu1,2\n");
        var first = new CollectingSink<Total?>();
        await Runner(dir, input, first).RunAsync();
        // Shrunk and grown again between runs: longer than what was read, so its size alone looks fine.
        File.WriteAllText(Path.Combine(input, "a.csv"), "u2,10\nu2,20\nu2,30\n");
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => Runner(dir, input, new CollectingSink<Total?>()).RunAsync());
        Assert.Contains("a.csv' was rewritten: position 10, where the checkpoint says the next record starts, is not the start of a line", e.Message);
    }

    [Fact]
    public async Task A_file_replaced_while_the_source_reads_it_is_detected_by_its_first_bytes()
    {
        using var dir = new TempDir();
        var source = new FileDirectorySource<string>(dir.Path, line => line);
        string file = dir.Sub("a.csv");
        File.WriteAllText(file, "aaaa\nbbbb\n");
        await source.ReadAsync("a.csv", 0, 5, new ListOutput(), default);
        File.WriteAllText(file, "cccc\ndddd\neeee\n"); // same line lengths: every position is still a line start
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => source.ReadAsync("a.csv", 5, 10, new ListOutput(), default));
        Assert.Contains("was rewritten while the pipeline ran: its first bytes differ", e.Message);

        // Appending is how files grow: reading on after an append is fine.
        File.WriteAllText(dir.Sub("b.csv"), "aaaa\n");
        await source.ReadAsync("b.csv", 0, 5, new ListOutput(), default);
        File.AppendAllText(dir.Sub("b.csv"), "bbbb\n");
        var output = new ListOutput();
        await source.ReadAsync("b.csv", 5, 10, output, default);
        Assert.Equal(new[] { "bbbb" }, output.Lines);
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("../outside.csv")]
    [InlineData("sub/inner.csv")]
    [InlineData("..")]
    public async Task A_partition_name_outside_the_input_directory_is_refused_and_never_opened(string partition)
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.Sub("outside.csv"), "secret\n");
        Directory.CreateDirectory(dir.Sub("in"));
        var source = new FileDirectorySource<string>(dir.Sub("in"), line => line);
        var output = new ListOutput();
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => source.ReadAsync(partition, 0, 7, output, default));
        Assert.Contains($"'{partition}' is not the name of a file in the input directory", e.Message);
        Assert.Empty(output.Lines);
        await Assert.ThrowsAsync<InvalidDataException>(() => source.GetEndPositionAsync(partition, default));
    }

    [Fact]
    public async Task A_fifo_in_the_input_directory_is_skipped_with_a_warning_and_never_blocks_the_run()
    {
        using var dir = new TempDir();
        string input = dir.Sub("in");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,1\nu1,2\n");
        CheckpointTestFiles.MakeFifo(Path.Combine(input, "b.pipe"));
        var warnings = new List<string>();
        var sink = new CollectingSink<Total?>();
        var run = Runner(dir, input, sink, sourceOptions: new FileDirectorySourceOptions { OnWarning = warnings.Add }).RunAsync();
        Assert.Same(run, await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(60))));
        await run;
        Assert.Equal(2, sink.All.Count);
        var warning = Assert.Single(warnings);
        Assert.Contains("'b.pipe', which is not a regular file", warning);
    }

    private sealed class ListOutput : ISourceOutput<string>
    {
        public List<string> Lines { get; } = new();

        public void Emit(long position, string record) => Lines.Add(record);

        public void Reject(long position, string raw, Exception error) => throw error;
    }

    [Fact]
    public async Task The_file_sink_writes_each_batch_once_atomically_and_a_replay_replaces_it()
    {
        using var dir = new TempDir();
        var sink = new FileSink<string>(dir.Sub("out"), s => s);
        await sink.WriteBatchAsync(3, new[] { "a", "b" }, default);
        await sink.WriteBatchAsync(3, new[] { "a", "b" }, default);
        await sink.WriteBatchAsync(4, Array.Empty<string>(), default);
        Assert.Equal(new[] { "part-0000000003.txt" }, Directory.GetFiles(dir.Sub("out")).Select(Path.GetFileName));
        Assert.Equal("a\nb\n", File.ReadAllText(Path.Combine(dir.Sub("out"), "part-0000000003.txt"), Encoding.UTF8));
    }

    [Fact]
    public async Task The_rate_source_is_deterministic_and_replayable()
    {
        var source = new RateSource(new RateSourceOptions { RecordsPerSecond = 100, Partitions = 3, TotalRecords = 10, StartTimeMs = 0 });
        Assert.Equal(new[] { "0", "1", "2" }, await source.ListPartitionsAsync(default));
        Assert.Equal(4, await source.GetEndPositionAsync("0", default));
        Assert.Equal(3, await source.GetEndPositionAsync("1", default));
        var records = new List<RateRecord>();
        await source.ReadAsync("1", 1, 3, new Collect(records), default);
        Assert.Equal(new[] { new RateRecord(4, 40), new RateRecord(7, 70) }, records);
    }

    private sealed class Collect(List<RateRecord> list) : ISourceOutput<RateRecord>
    {
        public void Emit(long position, RateRecord record) => list.Add(record);

        public void Reject(long position, string raw, Exception error) => throw error;
    }
}
