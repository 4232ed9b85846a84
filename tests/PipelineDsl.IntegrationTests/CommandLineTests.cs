using System.Reflection;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// Every program of the repository (samples, dev broker, benchmarks) as a user runs it: --help prints usage and
/// exits 0, a misspelt option or a bad value is an "error:" line naming it and exit code 2, and nothing runs.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class CommandLineTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>Each program, an option its help must list, and a value it must refuse (option, value).</summary>
    public static IEnumerable<object[]> Programs => new[]
    {
        new object[] { "ClicksPerUser", "--checkpoint", "--checkpoint-interval", "0" },
        new object[] { "KafkaClicks", "--bootstrap-servers", "--max-records-per-partition", "many" },
        new object[] { "Nexmark", "--query", "--query", "q99" },
        new object[] { "pipelinedsl-dev-broker", "--topic", "--topic", "clicks" },
        new object[] { "bench-runtime", "--records", "--records", "-5" },
        new object[] { "bench-nexmark", "--events", "--events", "2M" },
        new object[] { "bench-kafka", "--repeat", "--repeat", "0" },
    };

    private static string Program(string name) => typeof(CommandLineTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "Program:" + name).Value!;

    private (int Code, string Out, string Err) Run(string program, params string[] args)
    {
        using var p = SampleProcess.StartAssembly(Program(program), args, workingDirectory: _dir.Path);
        int code = p.WaitForExit(Timeout);
        return (code, p.Stdout, p.Stderr);
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public void Help_prints_usage_and_exits_0(string program, string listedOption, string badOption, string badValue)
    {
        _ = (badOption, badValue);
        foreach (var help in new[] { "--help", "-h" })
        {
            var (code, output, error) = Run(program, help);
            Assert.True(code == 0, $"{program} {help}: exit {code}\n{output}\n{error}");
            Assert.Contains("Usage:", output);
            Assert.Contains(listedOption, output);
            Assert.Equal("", error);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path)); // help ran nothing
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public void A_misspelt_option_is_an_error_naming_it_with_exit_code_2(string program, string listedOption, string badOption, string badValue)
    {
        _ = (badOption, badValue);
        string misspelt = listedOption[..^1] + "x" + listedOption[^1]; // for example --checkpoinxt
        var (code, output, error) = Run(program, misspelt, "value");
        Assert.True(code == 2, $"{program} {misspelt}: exit {code}\n{output}\n{error}");
        Assert.Contains("error:", error);
        Assert.Contains(misspelt, error);
        Assert.Contains("--help", error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path)); // nothing ran: no work directory was created
    }

    [Theory]
    [MemberData(nameof(Programs))]
    public void A_bad_value_is_an_error_naming_the_option_with_exit_code_2(string program, string listedOption, string badOption, string badValue)
    {
        _ = listedOption;
        var (code, output, error) = Run(program, badOption, badValue);
        Assert.True(code == 2, $"{program} {badOption} {badValue}: exit {code}\n{output}\n{error}");
        Assert.Contains("error:", error);
        Assert.True(error.Contains(badOption, StringComparison.Ordinal) || error.Contains(badValue, StringComparison.Ordinal), error);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir.Path));
    }

    [Theory]
    [InlineData("metadata")]
    [InlineData("offsets")]
    public void A_damaged_checkpoint_is_one_error_line_and_exit_1_not_a_stack_trace(string damaged)
    {
        string checkpoint = _dir.Sub("checkpoint");
        var (code, _, error) = Run("ClicksPerUser", "--checkpoint", checkpoint, "--output", _dir.Sub("output"), "--bounded", "--quiet", "--max-records-per-partition", "2000", "--checkpoint-interval", "100");
        Assert.True(code == 0, error);
        // An undecodable body sealed with a valid checksum: what the sample used to die on with exit 134.
        foreach (var file in damaged == "metadata" ? new[] { Path.Combine(checkpoint, "metadata") } : Directory.GetFiles(Path.Combine(checkpoint, "offsets")))
        {
            var envelope = PipelineDsl.Checkpointing.CheckpointFile.Open(File.ReadAllBytes(file), damaged == "metadata" ? "metadata" : "offsets", file);
            File.WriteAllBytes(file, PipelineDsl.Checkpointing.CheckpointFile.Wrap(envelope.Kind, envelope.PipelineId, envelope.CheckpointId!, envelope.Batch!.Value, new byte[] { 0x81, 0xa1, (byte)'x', 0xc1 }));
        }

        foreach (var state in Directory.GetFiles(Path.Combine(checkpoint, "state"))) File.Delete(state); // nothing else to fall back to
        (code, _, error) = Run("ClicksPerUser", "--checkpoint", checkpoint, "--output", _dir.Sub("output"), "--bounded", "--quiet");
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", error);
        Assert.Single(error.TrimEnd('\n').Split('\n'));
        Assert.Contains(damaged, error);
    }

    [Fact]
    public void Kafka_clicks_without_a_loadable_librdkafka_says_so_in_one_line()
    {
        // The sample as deployed without the librdkafka.redist package's native files.
        string built = Path.GetDirectoryName(Program("KafkaClicks"))!;
        string copy = _dir.Sub("kafka-clicks-without-native");
        foreach (var file in Directory.GetFiles(built, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(built, file);
            if (relative.StartsWith("runtimes", StringComparison.Ordinal) || relative.StartsWith("data", StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(copy, relative))!);
            File.Copy(file, Path.Combine(copy, relative));
        }

        using var p = SampleProcess.StartAssembly(Path.Combine(copy, "KafkaClicks.dll"), new[] { "--bootstrap-servers", "127.0.0.1:9", "--checkpoint", _dir.Sub("ck") }, _dir.Path);
        int code = p.WaitForExit(Timeout);
        Assert.Equal(1, code);
        Assert.StartsWith("error: librdkafka could not be loaded", p.Stderr);
        Assert.Single(p.Stderr.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void An_idle_continuous_run_prints_one_line_when_input_stops_and_one_when_it_resumes()
    {
        string input = _dir.Sub("input");
        Directory.CreateDirectory(input);
        File.WriteAllText(Path.Combine(input, "a.csv"), "u1,/,1,0\n");
        using var p = SampleProcess.StartAssembly(Program("ClicksPerUser"),
            new[] { "--input", input, "--checkpoint", _dir.Sub("checkpoint"), "--output", _dir.Sub("output"), "--continuous", "--batch-interval-ms", "50" }, _dir.Path);
        Assert.True(p.WaitForOutput("no new input", TimeSpan.FromSeconds(60)), p.Stdout + p.Stderr);
        Thread.Sleep(1500); // about 30 empty batches
        File.WriteAllText(Path.Combine(input, ".b.csv"), "u2,/,2,0\n");
        File.Move(Path.Combine(input, ".b.csv"), Path.Combine(input, "b.csv"));
        Assert.True(p.WaitForOutput("idle for", TimeSpan.FromSeconds(60)), p.Stdout + p.Stderr);
        p.SendSigterm();
        Assert.Equal(0, p.WaitForExit(Timeout));
        var batchLines = p.Stdout.Split('\n').Where(l => l.StartsWith("batch", StringComparison.Ordinal)).ToList();
        Assert.True(batchLines.Count <= 4, "an idle run printed a line per batch:\n" + p.Stdout); // the first batch, "no new input", b.csv's batch
        Assert.Matches(@"idle for \d+ s \(\d+ empty batches\)", p.Stdout);
    }

    [Fact]
    public void A_missing_input_directory_fails_before_the_checkpoint_directory_is_created()
    {
        string checkpoint = _dir.Sub("checkpoint");
        var (code, _, error) = Run("ClicksPerUser", "--input", _dir.Sub("no-such-input"), "--checkpoint", checkpoint, "--output", _dir.Sub("output"), "--bounded");
        Assert.Equal(1, code);
        Assert.Contains("no-such-input", error);
        Assert.StartsWith("error:", error);
        Assert.Single(error.Trim().Split('\n')); // one line, no stack trace
        Assert.False(Directory.Exists(checkpoint), "the checkpoint directory was created for a run that could not start");
    }
}
