using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PipelineDsl.Execution;

/// <summary>
/// The one <see cref="Meter"/> of PipelineDsl (<see cref="MeterName"/>) and its instruments, named in
/// OpenTelemetry style. Every measurement is tagged with <c>pipeline</c> (the pipeline id); phases with
/// <c>phase</c>, records with <c>source</c> or <c>sink</c>. With no listener attached an instrument's call is a
/// check of one field and nothing more. The table of instruments is in the README ("Metrics").
/// </summary>
internal sealed class PipelineMetrics
{
    /// <summary>The meter's name, to subscribe to (OpenTelemetry: <c>AddMeter("PipelineDsl")</c>).</summary>
    public const string MeterName = PipelineMeter.Name;

    private static readonly Meter Meter = new(MeterName, typeof(PipelineMetrics).Assembly.GetName().Version?.ToString());

    private static readonly Counter<long> Batches = Meter.CreateCounter<long>("pipelinedsl.batches", "{batch}", "Batches run; replayed=true for batches re-run during recovery (sinks skipped)");
    private static readonly Histogram<double> BatchDuration = Meter.CreateHistogram<double>("pipelinedsl.batch.duration", "s", "Wall time of a batch, from its plan to its commit started");
    private static readonly Histogram<double> PhaseDuration = Meter.CreateHistogram<double>("pipelinedsl.batch.phase.duration", "s", "Wall time of one phase of a batch: plan, read, execute, offsets (waiting for the plan to be durable), sink, commit, snapshot");
    private static readonly Histogram<double> SchedulingDelay = Meter.CreateHistogram<double>("pipelinedsl.batch.scheduling_delay", "s", "How late a batch started against its interval (continuous trigger)");
    private static readonly Counter<long> InputRecords = Meter.CreateCounter<long>("pipelinedsl.records.input", "{record}", "Records read from a source, bad records included");
    private static readonly Counter<long> OutputRecords = Meter.CreateCounter<long>("pipelinedsl.records.output", "{record}", "Records delivered to a sink");
    private static readonly Counter<long> DeadLetters = Meter.CreateCounter<long>("pipelinedsl.records.dead_letter", "{record}", "Bad records set aside by the dead-letter policy");
    private static readonly Counter<long> Recoveries = Meter.CreateCounter<long>("pipelinedsl.recoveries", "{recovery}", "Runs that continued an existing checkpoint");
    private static readonly Counter<long> Takeovers = Meter.CreateCounter<long>("pipelinedsl.takeovers", "{takeover}", "Hot standbys that took the checkpoint over");
    private static readonly UpDownCounter<long> StateKeys = Meter.CreateUpDownCounter<long>("pipelinedsl.state.keys", "{key}", "Keys held by the stateful operators");

    private static readonly ObservableGauge<long> SourceLag = Meter.CreateObservableGauge("pipelinedsl.source.lag", ObserveLag, "{position}",
        "How far each source partition's data was ahead of the last batch's end when it was planned: records for Kafka and memory sources, bytes for files");

    // The runs of this process that report lag, each with its latest per-partition figures.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<PipelineMetrics, Measurement<long>[]> LagByRun = new();

    private static IEnumerable<Measurement<long>> ObserveLag()
    {
        foreach (var measurements in LagByRun.Values)
            foreach (var m in measurements) yield return m;
    }

    private readonly KeyValuePair<string, object?> _pipeline;
    private long _reportedKeys;

    public PipelineMetrics(string pipelineId) => _pipeline = new KeyValuePair<string, object?>("pipeline", pipelineId);

    /// <summary>A timestamp to measure a phase from (<see cref="Phase"/>).</summary>
    public static long Start() => Stopwatch.GetTimestamp();

    /// <summary>
    /// Records the phase that began at <paramref name="since"/> into the batch's progress (<paramref name="phases"/>) and,
    /// when someone listens, the meter; returns the timestamp it ended at (the next phase's start).
    /// </summary>
    public long Phase(string phase, long since, Dictionary<string, TimeSpan> phases)
    {
        long now = Stopwatch.GetTimestamp();
        var elapsed = Stopwatch.GetElapsedTime(since, now);
        phases[phase] = elapsed;
        if (PhaseDuration.Enabled) PhaseDuration.Record(elapsed.TotalSeconds, _pipeline, new KeyValuePair<string, object?>("phase", phase));
        return now;
    }

    public void BatchDone(long since, bool replayed, long stateKeys)
    {
        Batches.Add(1, _pipeline, new KeyValuePair<string, object?>("replayed", replayed));
        if (BatchDuration.Enabled) BatchDuration.Record(Stopwatch.GetElapsedTime(since).TotalSeconds, _pipeline);
        if (stateKeys != _reportedKeys)
        {
            StateKeys.Add(stateKeys - _reportedKeys, _pipeline);
            _reportedKeys = stateKeys;
        }
    }

    public void Input(string source, long records)
    {
        if (records > 0) InputRecords.Add(records, _pipeline, new KeyValuePair<string, object?>("source", source));
    }

    public void Output(string sink, long records)
    {
        if (records > 0) OutputRecords.Add(records, _pipeline, new KeyValuePair<string, object?>("sink", sink));
    }

    public void DeadLettered(long records)
    {
        if (records > 0) DeadLetters.Add(records, _pipeline);
    }

    public void Late(TimeSpan delay)
    {
        if (SchedulingDelay.Enabled) SchedulingDelay.Record(Math.Max(0, delay.TotalSeconds), _pipeline);
    }

    public void Recovered() => Recoveries.Add(1, _pipeline);

    public void TookOver() => Takeovers.Add(1, _pipeline);

    /// <summary>The lag of each partition as the last batch found it (see <see cref="PartitionProgress.Lag"/>), for the gauge.</summary>
    public void Lag(IReadOnlyList<SourceProgress> sources)
    {
        if (!SourceLag.Enabled) return;
        var measurements = new List<Measurement<long>>();
        foreach (var source in sources)
            foreach (var partition in source.Partitions)
                if (partition.Lag is long lag)
                    measurements.Add(new Measurement<long>(lag, _pipeline, new KeyValuePair<string, object?>("source", source.Source), new KeyValuePair<string, object?>("partition", partition.Partition)));
        LagByRun[this] = measurements.ToArray();
    }

    /// <summary>At the end of a run: the state it held is no longer this process's to report.</summary>
    public void Stopped()
    {
        LagByRun.TryRemove(this, out _);
        if (_reportedKeys != 0) StateKeys.Add(-_reportedKeys, _pipeline);
        _reportedKeys = 0;
    }
}
