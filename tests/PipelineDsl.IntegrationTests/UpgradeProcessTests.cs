using System.Diagnostics;
using System.Reflection;
using PipelineDsl.Cli;

namespace PipelineDsl.IntegrationTests;

/// <summary>
/// The upgrade Spark users cannot do: a small app is built (its own project, dotnet build), run as a child
/// process and killed mid-stream; the next version is built from changed source (a separate compilation and
/// assembly) and restores the same checkpoint. The final output must equal an uninterrupted run of v1 then
/// v2 (then v3) switching at the same batch boundaries.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class UpgradeProcessTests(Xunit.Abstractions.ITestOutputHelper log) : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromMinutes(5);
    private static readonly string Repo = Path.GetFullPath(typeof(UpgradeProcessTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "RepositoryRoot").Value!);
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private const string Program = """
        using PipelineDsl;
        using PipelineDsl.Sinks;
        using PipelineDsl.Sources;

        // upgrade-app <input> <checkpoint> <output> [--stop-after-batch N | --slow]
        long stopAfter = args.Length == 5 && args[3] == "--stop-after-batch" ? long.Parse(args[4]) : long.MaxValue;
        bool slow = args.Length == 4 && args[3] == "--slow"; // a pause per batch, so that a test's kill lands mid-stream
        using var stop = new CancellationTokenSource();
        var runner = new PipelineRunner(App.Definition, new PipelineRunnerOptions
            {
                CheckpointDirectory = args[1], Trigger = TriggerMode.AvailableNow, MaxRecordsPerPartition = 500, CheckpointInterval = 5,
            })
            .BindSource(App.Hits(), new FileDirectorySource<Hit>(args[0], Hit.Parse))
            .BindSink(App.Out(), new FileSink<string>(args[2], s => s));
        runner.BatchCompleted += p =>
        {
            Console.WriteLine($"batch {p.BatchId}");
            if (p.BatchId >= stopAfter) stop.Cancel();
            if (slow) Thread.Sleep(40);
        };
        try
        {
            var summary = await runner.RunAsync(stop.Token);
            Console.WriteLine($"done {summary.LastCommittedBatch}");
            return 0;
        }
        catch (CheckpointIncompatibleException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 1;
        }

        public sealed record Hit(string User, long Value)
        {
            public static Hit Parse(string line)
            {
                var f = line.Split(',');
                return new Hit(f[0], long.Parse(f[1]));
            }
        }
        """;

    private const string V1 = """
        using PipelineDsl;

        [StateContract] public partial class Tally { [Field(0)] public long Count { get; set; } }

        [Pipeline("upgrade-app")]
        public static partial class App
        {
            [Source("hits")] public static partial Source<Hit> Hits();

            [UpdateState("tally", From = "hits", Key = nameof(Hit.User))]
            public static string Count(string user, Hit h, KeyedState<Tally> s)
            {
                var t = s.Exists ? s.Value : new Tally();
                t.Count++;
                s.Update(t);
                return $"{user},{t.Count}";
            }

            [Sink("out", From = "tally")] public static partial Sink<string> Out();
        }
        """;

    // v2: method renamed, a stateless stage added, a state field added, the version bumped with a migration.
    private const string V2 = """
        using PipelineDsl;

        [StateContract] public partial class TallyV1 { [Field(0)] public long Count { get; set; } }
        [StateContract] public partial class Tally { [Field(0)] public long Count { get; set; } [Field(1)] public long Sum { get; set; } }

        [Pipeline("upgrade-app")]
        public static partial class App
        {
            [Source("hits")] public static partial Source<Hit> Hits();

            [Filter("valid", From = "hits")] public static bool Valid(Hit h) => h.Value >= 0;

            [UpdateState("tally", From = "valid", Key = nameof(Hit.User), Version = 2)]
            public static string CountAndSum(string user, Hit h, KeyedState<Tally> s)
            {
                var t = s.Exists ? s.Value : new Tally();
                t.Count++;
                t.Sum += h.Value;
                s.Update(t);
                return $"{user},{t.Count},{t.Sum}";
            }

            [StateMigration("tally", FromVersion = 1)]
            public static Tally FromV1(TallyV1 old) => new() { Count = old.Count, Sum = -old.Count };

            [Sink("out", From = "tally")] public static partial Sink<string> Out();
        }
        """;

    // v3: another field, version 3, migrations chained from 1 and 2.
    private const string V3 = """
        using PipelineDsl;

        [StateContract] public partial class TallyV1 { [Field(0)] public long Count { get; set; } }
        [StateContract] public partial class TallyV2 { [Field(0)] public long Count { get; set; } [Field(1)] public long Sum { get; set; } }
        [StateContract] public partial class Tally { [Field(0)] public long Count { get; set; } [Field(1)] public long Sum { get; set; } [Field(2)] public long Max { get; set; } }

        [Pipeline("upgrade-app")]
        public static partial class App
        {
            [Source("hits")] public static partial Source<Hit> Hits();

            [Filter("valid", From = "hits")] public static bool Valid(Hit h) => h.Value >= 0;

            [UpdateState("tally", From = "valid", Key = nameof(Hit.User), Version = 3)]
            public static string Track(string user, Hit h, KeyedState<Tally> s)
            {
                var t = s.Exists ? s.Value : new Tally { Max = long.MinValue };
                t.Count++;
                t.Sum += h.Value;
                t.Max = Math.Max(t.Max, h.Value);
                s.Update(t);
                return $"{user},{t.Count},{t.Sum},{t.Max}";
            }

            [StateMigration("tally", FromVersion = 1)]
            public static TallyV2 FromV1(TallyV1 old) => new() { Count = old.Count, Sum = -old.Count };

            [StateMigration("tally", FromVersion = 2)]
            public static Tally FromV2(TallyV2 old) => new() { Count = old.Count, Sum = old.Sum, Max = -1 };

            [Sink("out", From = "tally")] public static partial Sink<string> Out();
        }
        """;

    /// <summary>The committed lock file of the app, copied into each version's project when set.</summary>
    private string? _lockFile;

    /// <summary>Writes a version of the app as its own project with the given pipeline source and builds it.</summary>
    private string Build(string pipeline, string name, bool expectSuccess = true)
    {
        string AppDir = _dir.Sub("app-" + name);
        Directory.CreateDirectory(AppDir);
        if (_lockFile is not null) File.WriteAllText(Path.Combine(AppDir, "pipelines.lock.json"), _lockFile);
        File.WriteAllText(Path.Combine(AppDir, "upgrade-app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <ProjectReference Include="{Repo}src/Runtime/PipelineDsl.Runtime.csproj" />
                <ProjectReference Include="{Repo}src/Generator/PipelineDsl.Generator.csproj" OutputItemType="Analyzer" ReferenceOutputAssembly="false" />
                <AdditionalFiles Include="pipelines.lock.json" Condition="Exists('pipelines.lock.json')" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(AppDir, "Program.cs"), Program);
        File.WriteAllText(Path.Combine(AppDir, "Pipeline.cs"), pipeline);
        string output = _dir.Sub("build-" + name);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppDir };
        foreach (var a in new[] { "build", "-c", "Release", "-o", output, "-nologo" }) start.ArgumentList.Add(a);
        using var build = Process.Start(start)!;
        string log = build.StandardOutput.ReadToEnd() + build.StandardError.ReadToEnd();
        Assert.True(build.WaitForExit(Long));
        if (expectSuccess) Assert.True(build.ExitCode == 0, log);
        else Assert.True(build.ExitCode != 0, "the build should have failed:\n" + log);
        LastBuildLog = log;
        return Path.Combine(output, "upgrade-app.dll");
    }

    private string LastBuildLog { get; set; } = "";

    private static ChildProcess Start(string app, params string[] args) => SampleProcess.StartAssembly(app, args);

    private static void RunToEnd(string app, params string[] args)
    {
        using var p = Start(app, args);
        int code = p.WaitForExit(Long);
        Assert.True(code == 0, $"exit {code}\n{p.Stdout}\n{p.Stderr}");
    }

    /// <summary>Starts the app, lets it commit a few batches, kills it with SIGKILL; returns the last committed batch.</summary>
    private long RunAndKill(string app, string checkpoint, string output, int batches)
    {
        using var p = Start(app, Input, checkpoint, output, "--slow");
        p.WaitForLines(l => l.StartsWith("batch ", StringComparison.Ordinal), batches, Long);
        Assert.False(p.HasExited, "the app finished before it could be killed; make the input larger");
        p.KillHard();
        p.WaitForExit(Long);
        // A killed run leaves hidden temporary files (an interrupted write, or spares it recycled): not commits.
        var commits = Directory.GetFiles(Path.Combine(checkpoint, "commits")).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).Select(n => long.Parse(n!)).ToList();
        return commits.Max();
    }

    private string Input => _dir.Sub("input");

    private const int HitsPerFile = 60_000;

    private void WriteInput()
    {
        Directory.CreateDirectory(Input);
        var random = TestRandom.Create(7, log);
        // 120 batches of 2,000 records: with --slow's 40 ms per batch the killed runs have about 5 s left after
        // the batches a test waits for, so a busy host that reads the app's output late still kills it mid-stream.
        for (int f = 0; f < 4; f++)
            File.WriteAllLines(Path.Combine(Input, $"hits-{f}.csv"), Enumerable.Range(0, HitsPerFile).Select(_ => $"user-{random.Next(300):D3},{random.Next(1000)}"));
    }

    private static void AssertSameOutput(string expected, string actual)
    {
        var e = Directory.GetFiles(expected).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var a = Directory.GetFiles(actual).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(e, a);
        foreach (var file in e) Assert.Equal(File.ReadAllText(Path.Combine(expected, file!)), File.ReadAllText(Path.Combine(actual, file!)));
    }

    [Fact]
    public void Killed_v1_then_rebuilt_v2_then_rebuilt_v3_restore_one_checkpoint_exactly_once()
    {
        WriteInput();
        string v1 = Build(V1, "v1");
        string v2 = Build(V2, "v2");
        string v3 = Build(V3, "v3");
        Assert.NotEqual(v1, v2);

        string checkpoint = _dir.Sub("checkpoint"), output = _dir.Sub("output");
        long b1 = RunAndKill(v1, checkpoint, output, 8);
        long b2 = RunAndKill(v2, checkpoint, output, 8);
        Assert.True(b2 > b1, $"v2 committed nothing new ({b1} -> {b2})");
        RunToEnd(v3, Input, checkpoint, output);

        // Reference: uninterrupted v1 up to b1, v2 up to b2, then v3, each stopping cleanly at the boundary.
        string refCheckpoint = _dir.Sub("ref-checkpoint"), refOutput = _dir.Sub("ref-output");
        RunToEnd(v1, Input, refCheckpoint, refOutput, "--stop-after-batch", b1.ToString());
        RunToEnd(v2, Input, refCheckpoint, refOutput, "--stop-after-batch", b2.ToString());
        RunToEnd(v3, Input, refCheckpoint, refOutput);
        AssertSameOutput(refOutput, output);

        // Each version's output is where it should be: v2's lines carry a sum, v3's a max as well.
        var files = Directory.GetFiles(output).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(1, File.ReadLines(files[(int)b1]).First().Count(c => c == ','));     // v1: user,count
        Assert.Equal(2, File.ReadLines(files[(int)b1 + 1]).First().Count(c => c == ',')); // v2: user,count,sum
        Assert.Equal(3, File.ReadLines(files[(int)b2 + 1]).First().Count(c => c == ',')); // v3: user,count,sum,max
        long lines = files.Sum(f => File.ReadLines(f).LongCount());
        Assert.Equal(4 * HitsPerFile, lines); // every hit once: none lost, none twice
    }

    [Fact]
    public async Task An_incompatible_v2_fails_the_build_and_forced_through_a_stale_lock_file_the_runtime_refuses()
    {
        WriteInput();
        string v1 = Build(V1, "v1");
        string checkpoint = _dir.Sub("checkpoint"), output = _dir.Sub("output");
        RunAndKill(v1, checkpoint, output, 3);

        // Lock v1 (the build that runs in production), as a user would after deploying it.
        string lockPath = _dir.Sub("pipelines.lock.json");
        Assert.Equal(0, await CliApp.RunAsync(new[] { "lock", v1, "--lock-file", lockPath }, new StringWriter(), new StringWriter()));
        _lockFile = File.ReadAllText(lockPath);

        // v2 changes the type of field 0 without a version bump: the build fails, naming the operator and the fix.
        string incompatible = V1.Replace("[Field(0)] public long Count { get; set; }", "[Field(0)] public string Count { get; set; } = \"\";")
            .Replace("t.Count++;", "t.Count += \"+\";");
        Build(incompatible, "bad", expectSuccess: false);
        Assert.Contains("error PDSL201: The state of 'tally' changed incompatibly at version 1 (field 0 was int64 and is now string)", LastBuildLog);

        // Forced through: the lock file is regenerated from the new build itself (stale with respect to what
        // wrote the checkpoint), so the build passes; the runtime then refuses to start, operator by operator.
        _lockFile = null;
        string forced = Build(incompatible, "forced");
        File.Delete(lockPath);
        Assert.Equal(0, await CliApp.RunAsync(new[] { "lock", forced, "--lock-file", lockPath }, new StringWriter(), new StringWriter()));
        _lockFile = File.ReadAllText(lockPath);
        forced = Build(incompatible, "forced2");
        using var p = Start(forced, Input, checkpoint, output);
        Assert.Equal(1, p.WaitForExit(Long));
        Assert.Contains("cannot be restored by this build of pipeline 'upgrade-app'", p.Stderr);
        Assert.Contains("operator 'tally': its state schema changed incompatibly at version 1: field 0 was int64 and is now string. Bump its Version and add a [StateMigration(\"tally\", FromVersion = 1)] method", p.Stderr);

        // And the diff tool tells the same before anything runs.
        var diff = new StringWriter();
        Assert.Equal(3, await CliApp.RunAsync(new[] { "diff", checkpoint, forced }, diff, new StringWriter()));
        Assert.Contains("INCOMPATIBLE: operator 'tally': its state schema changed incompatibly", diff.ToString());
    }
}
