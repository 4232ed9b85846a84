using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace PipelineDsl.Bench.Shared;

/// <summary>
/// Where batches' time goes: sums the PipelineDsl meter's phase durations (plan, read, execute, offsets, sink, commit,
/// snapshot) per phase while started. Linked into the benchmarks that print a phase breakdown.
/// </summary>
internal sealed class PhaseTotals : IDisposable
{
    private readonly ConcurrentDictionary<string, double> _seconds = new(StringComparer.Ordinal);
    private readonly MeterListener _listener;

    public PhaseTotals()
    {
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == PipelineMeter.Name && instrument.Name == "pipelinedsl.batch.phase.duration") l.EnableMeasurementEvents(instrument);
            },
        };
        _listener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
        {
            foreach (var tag in tags)
                if (tag.Key == "phase") _seconds.AddOrUpdate((string)tag.Value!, seconds, (_, s) => s + seconds);
        });
    }

    public bool IsEmpty => _seconds.IsEmpty;

    public void Start() => _listener.Start();

    /// <summary>"execute 340 ms, commit 95 ms, ...", largest first, each total divided by <paramref name="per"/>.</summary>
    public string Describe(int per = 1) => string.Join(", ", _seconds.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value * 1000 / per:F0} ms"));

    public void Dispose() => _listener.Dispose();
}
