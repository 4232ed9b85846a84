using System.Reflection;
using static PipelineDsl.Kafka.Tests.KafkaTestKit;

namespace PipelineDsl.Kafka.Tests;

/// <summary>
/// Real processes: the dev broker in one, the Kafka sample in another, killed with SIGKILL at random moments
/// while this test produces input, and restarted on the same checkpoint.
/// </summary>
[Trait(ProcessLane.Trait, ProcessLane.Value)]
[Collection(ProcessLane.Name)]
public sealed class ProcessKillTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly string Sample = typeof(ProcessKillTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "SampleAssembly").Value!;

    [Fact]
    public async Task Killing_the_pipeline_process_repeatedly_while_a_producer_writes_loses_nothing()
    {
        using var broker = Start("dev-broker", "--topic", "clicks:4", "--topic", "user-totals:4");
        string first = broker.ReadLine(TimeSpan.FromSeconds(30));
        Assert.StartsWith("bootstrap.servers=", first);
        string servers = first["bootstrap.servers=".Length..];
        string checkpoint = TempDir();
        const int total = 24_000;

        var producer = Task.Run(() =>
        {
            for (int from = 0; from < total; from += 1000)
            {
                ProduceClicks(servers, "clicks", from, from + 1000);
                Thread.Sleep(300);
            }
        });

        string[] run = { "--bootstrap-servers", servers, "--checkpoint", checkpoint, "--continuous", "--batch-interval-ms", "100", "--max-records-per-partition", "300", "--checkpoint-interval", "3" };
        var random = TestRandom.Create(7, log);
        int kills = 0;
        while (!producer.IsCompleted || kills < 6)
        {
            using var pipeline = Start(run);
            Thread.Sleep(random.Next(700, 2500));
            Assert.False(pipeline.HasExited, $"the pipeline exited by itself:\n{pipeline.Output}");
            pipeline.KillHard();
            kills++;
        }

        await producer;
        // A last bounded run works off whatever the killed runs left.
        using (var drain = Start(run.Where(a => a != "--continuous").Append("--bounded").ToArray()))
        {
            Assert.True(drain.WaitForExit(TimeSpan.FromMinutes(3)) == 0, $"the draining run failed:\n{drain.Output}");
        }

        var (totals, clicks) = Expected(total);
        var output = ReadTotals(servers, "user-totals");
        Assert.True(kills >= 6);
        Assert.Equal(totals, output.Totals);          // state counted every click exactly once
        Assert.Empty(clicks.Except(output.Clicks));   // every human click is reflected in the output
    }

    /// <summary>The sample as a child process, its input open (the dev broker stops on "quit").</summary>
    private static ChildProcess Start(params string[] args) => ChildProcess.Start(Sample, args, quitCommand: "quit");
}
