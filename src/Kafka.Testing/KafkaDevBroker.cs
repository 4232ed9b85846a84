using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;

namespace PipelineDsl.Kafka.Testing;

/// <summary>
/// A development broker: librdkafka's mock cluster in a process of its own, so that pipelines can be started,
/// killed and restarted against it. Prints <c>bootstrap.servers=host:port,…</c> as its first line, then
/// takes commands on standard input, one per line, answering <c>ok</c> or <c>error: …</c>:
/// <c>topic NAME PARTITIONS</c>, <c>down BROKER</c>, <c>up BROKER</c>, <c>quit</c>. It stops on <c>quit</c>,
/// at the end of its input, or on SIGINT/SIGTERM. Not a production broker (see <see cref="KafkaMockCluster"/>).
/// </summary>
public static class KafkaDevBroker
{
    /// <summary>
    /// Runs the broker until told to stop: <paramref name="brokers"/> brokers, with <paramref name="topics"/>
    /// created first. Returns the process exit code.
    /// </summary>
    public static int Run(int brokers, IReadOnlyList<(string Name, int Partitions)> topics, TextReader input, TextWriter output)
    {
        if (brokers < 1) throw new ArgumentOutOfRangeException(nameof(brokers), "A broker count must be 1 or more.");
        KafkaTestingNative.EnsureLoaded();
        using var cluster = CreateWithSignalsBlocked(brokers);
        foreach (var (name, partitions) in topics) cluster.CreateTopic(name, partitions);
        output.WriteLine("bootstrap.servers=" + cluster.BootstrapServers);
        output.Flush();
        Console.Error.WriteLine($"dev broker: librdkafka {KafkaMockCluster.NativeVersion} from {KafkaTestingNative.LoadedPath ?? "the system's search path"}, process {Environment.ProcessId}");

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        var reader = new Thread(() =>
        {
            string? line;
            while ((line = input.ReadLine()) is not null)
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 0) continue;
                try
                {
                    switch (parts[0])
                    {
                        case "quit": stop.Cancel(); return;
                        case "topic" when parts.Length == 3: cluster.CreateTopic(parts[1], int.Parse(parts[2], CultureInfo.InvariantCulture)); break;
                        case "down" when parts.Length == 2: cluster.SetBrokerDown(int.Parse(parts[1], CultureInfo.InvariantCulture)); break;
                        case "up" when parts.Length == 2: cluster.SetBrokerUp(int.Parse(parts[1], CultureInfo.InvariantCulture)); break;
                        default: throw new ArgumentException($"unknown command '{line}' (topic NAME PARTITIONS, down BROKER, up BROKER, quit)");
                    }

                    lock (output) output.WriteLine("ok");
                }
                catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or OverflowException)
                {
                    lock (output) output.WriteLine("error: " + e.Message);
                }

                lock (output) output.Flush();
            }

            stop.Cancel(); // end of input: the parent is gone
        }) { IsBackground = true, Name = "dev-broker commands" };
        reader.Start();
        stop.Token.WaitHandle.WaitOne();
        return 0;
    }

    /// <summary>Parses a topic given as <c>NAME:PARTITIONS</c> (the dev broker's --topic format).</summary>
    public static (string Name, int Partitions) ParseTopic(string spec)
    {
        int colon = spec.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(spec.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int partitions) || partitions < 1)
            throw new FormatException($"A topic is NAME:PARTITIONS with 1 or more partitions, for example clicks:4, not '{spec}'.");
        return (spec[..colon], partitions);
    }

    /// <summary>
    /// The mock cluster's threads inherit the creating thread's signal mask. Blocking SIGINT/SIGTERM around
    /// the creation keeps those signals off librdkafka's threads, so that .NET's handler sees them.
    /// </summary>
    private static KafkaMockCluster CreateWithSignalsBlocked(int brokers)
    {
        if (!OperatingSystem.IsLinux()) return new KafkaMockCluster(brokers);
        var set = new byte[128];
        var previous = new byte[128];
        sigemptyset(set);
        sigaddset(set, 2);  // SIGINT
        sigaddset(set, 15); // SIGTERM
        pthread_sigmask(0 /* SIG_BLOCK */, set, previous);
        try
        {
            return new KafkaMockCluster(brokers);
        }
        finally
        {
            pthread_sigmask(2 /* SIG_SETMASK */, previous, null);
        }
    }

    [DllImport("libc", SetLastError = true)] private static extern int sigemptyset(byte[] set);

    [DllImport("libc", SetLastError = true)] private static extern int sigaddset(byte[] set, int signal);

    [DllImport("libc", SetLastError = true)] private static extern int pthread_sigmask(int how, byte[] set, byte[]? oldSet);
}
