using System.Diagnostics;
using System.Reflection;
using System.Text;
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
        using var broker = Child.Start("dev-broker", "--topic", "clicks:4", "--topic", "user-totals:4");
        string first = broker.ReadLine(TimeSpan.FromSeconds(30));
        Assert.StartsWith("bootstrap.servers=", first);
        string servers = first["bootstrap.servers=".Length..];
        string checkpoint = TempDirectory();
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
            using var pipeline = Child.Start(run);
            Thread.Sleep(random.Next(700, 2500));
            Assert.False(pipeline.HasExited, $"the pipeline exited by itself:\n{pipeline.Output}");
            pipeline.Kill();
            kills++;
        }

        await producer;
        // A last bounded run works off whatever the killed runs left.
        using (var drain = Child.Start(run.Where(a => a != "--continuous").Append("--bounded").ToArray()))
        {
            Assert.True(drain.WaitForExit(TimeSpan.FromMinutes(3)) == 0, $"the draining run failed:\n{drain.Output}");
        }

        var (totals, clicks) = Expected(total);
        var output = ReadTotals(servers, "user-totals");
        Assert.True(kills >= 6);
        Assert.Equal(totals, output.Totals);          // state counted every click exactly once
        Assert.Empty(clicks.Except(output.Clicks));   // every human click is reflected in the output
    }

    /// <summary>The sample as a child process, with its output captured and its input open (for the dev broker).</summary>
    private sealed class Child : IDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly Queue<string> _lines = new();

        private Child(string[] args)
        {
            Assert.True(File.Exists(Sample), $"the sample is not built at {Sample}");
            var start = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            start.ArgumentList.Add(Sample);
            foreach (var a in args) start.ArgumentList.Add(a);
            _process = new Process { StartInfo = start };
            _process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (_output)
                {
                    _output.AppendLine(e.Data);
                    _lines.Enqueue(e.Data);
                }
            };
            _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_output) _output.AppendLine(e.Data); };
            _process.Start();
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
        }

        public static Child Start(params string[] args) => new(args);

        public bool HasExited => _process.HasExited;

        public string Output { get { lock (_output) return _output.ToString(); } }

        public string ReadLine(TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            while (DateTime.UtcNow < deadline)
            {
                lock (_output) if (_lines.Count > 0) return _lines.Dequeue();
                Thread.Sleep(20);
            }

            throw new TimeoutException($"no output within {timeout}:\n{Output}");
        }

        /// <summary>SIGKILL: no handler runs.</summary>
        public void Kill() => _process.Kill(entireProcessTree: true);

        public int WaitForExit(TimeSpan timeout)
        {
            if (!_process.WaitForExit(timeout))
            {
                Kill();
                Assert.Fail($"did not exit within {timeout}:\n{Output}");
            }

            _process.WaitForExit();
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                try
                {
                    _process.StandardInput.WriteLine("quit");
                    _process.StandardInput.Flush();
                    if (!_process.WaitForExit(5000)) Kill();
                }
                catch (Exception e) when (e is IOException or InvalidOperationException)
                {
                    Kill();
                }
            }

            _process.Dispose();
        }
    }
}
