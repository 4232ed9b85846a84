using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Linq;

namespace PipelineDsl.Execution;

/// <summary>
/// The one <see cref="Meter"/> of PipelineDsl (<see cref="MeterName"/>) and its instruments, named in
/// OpenTelemetry style. Every measurement is tagged with <c>pipeline</c> (the pipeline id); phases with
/// <c>phase</c>, records with <c>source</c> or <c>sink</c>, state and watermarks with <c>operator</c>, checkpoint writes
/// with <c>file</c>. With no listener attached an instrument's call is a
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
    private static readonly UpDownCounter<long> StateKeys = Meter.CreateUpDownCounter<long>("pipelinedsl.state.keys", "{key}", "Keys held by each stateful operator");
    private static readonly Histogram<long> StateDeltaSize = Meter.CreateHistogram<long>("pipelinedsl.state.delta.size", "By", "Bytes of one stateful operator's state delta in a batch's commit file");
    private static readonly Histogram<long> CheckpointWriteSize = Meter.CreateHistogram<long>("pipelinedsl.checkpoint.write.size", "By", "Bytes of one checkpoint file written: offsets, commit or snapshot");
    private static readonly Histogram<double> CheckpointWriteDuration = Meter.CreateHistogram<double>("pipelinedsl.checkpoint.write.duration", "s", "Wall time of writing one checkpoint file (durable when it is offsets or a snapshot)");

    private static readonly ObservableGauge<long> SourceLag = Meter.CreateObservableGauge("pipelinedsl.source.lag", () => Observe(g => g.Lag), "{position}",
        "How far each source partition's data was ahead of the last batch's end when it was planned: records for Kafka and memory sources, bytes for files");
    private static readonly ObservableGauge<long> StateSnapshotSize = Meter.CreateObservableGauge("pipelinedsl.state.snapshot.size", () => Observe(g => g.SnapshotSizes), "By",
        "Bytes of each stateful operator's state in the newest snapshot this run wrote");
    private static readonly ObservableGauge<long> Watermark = Meter.CreateObservableGauge("pipelinedsl.watermark", () => Observe(g => g.Watermarks), "ms",
        "Each watermark stage's watermark after the last batch, Unix milliseconds: records older than it are late");

    private static readonly ObservableGauge<double> InputRate = Meter.CreateObservableGauge("pipelinedsl.records.input_rate", () => ObserveRates(g => g.InputRate), "{record}/s",
        "Records read by the last batch per second since the batch before it started (Spark's inputRowsPerSecond)");
    private static readonly ObservableGauge<double> ProcessingRate = Meter.CreateObservableGauge("pipelinedsl.records.processing_rate", () => ObserveRates(g => g.ProcessingRate), "{record}/s",
        "Records read by the last batch per second of its duration (Spark's processedRowsPerSecond)");

    private static readonly ObservableGauge<double> RateLimit = Meter.CreateObservableGauge("pipelinedsl.backpressure.rate_limit", () => ObserveRates(g => g.RateLimit), "{record}/s",
        "The backpressure rate limit the last batch was planned under: it read at most this times the batch interval (only with backpressure on)");

    private static readonly ObservableGauge<long> ReceiverBacklog = Meter.CreateObservableGauge("pipelinedsl.receiver.backlog", () => ObserveReceivers(r => r.Backlog()), "{record}",
        "Records a receiver logged that no committed batch has read yet (requests, for the HTTP receiver)");
    private static readonly ObservableGauge<long> ReceiverBacklogLimit = Meter.CreateObservableGauge("pipelinedsl.receiver.backlog.limit", () => ObserveReceivers(r => r.Limit), "{record}",
        "The backlog at which a receiver holds its senders back (ReceiverOptions.MaxBacklogRecords)");

    // Receivers bound to a run of this process, for their gauges: from the run's start until the receiver is disposed.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<object, TrackedReceiver> Receivers = new(ReferenceEqualityComparer.Instance);

    private sealed record TrackedReceiver(KeyValuePair<string, object?>[] Tags, Func<long> Backlog, long Limit);

    private static IEnumerable<Measurement<long>> ObserveReceivers(Func<TrackedReceiver, long> figure) =>
        Receivers.Values.Select(r => new Measurement<long>(figure(r), r.Tags)).ToArray();

    /// <summary>Reports a receiver's backlog, tagged with the pipeline and source it is bound to, until <see cref="UntrackReceiver"/>.</summary>
    public static void TrackReceiver(object receiver, string pipeline, string source, Func<long> backlog, long limit) =>
        Receivers[receiver] = new TrackedReceiver(new[] { new KeyValuePair<string, object?>("pipeline", pipeline), new KeyValuePair<string, object?>("source", source) }, backlog, limit);

    public static void UntrackReceiver(object receiver) => Receivers.TryRemove(receiver, out _);

    // The runs of this process, each with the latest figures its observable gauges report.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<PipelineMetrics, Gauges> GaugesByRun = new();

    private sealed class Gauges
    {
        public volatile Measurement<long>[] Lag = Array.Empty<Measurement<long>>();
        public volatile Measurement<long>[] SnapshotSizes = Array.Empty<Measurement<long>>();
        public volatile Measurement<long>[] Watermarks = Array.Empty<Measurement<long>>();
        public volatile Measurement<double>[] InputRate = Array.Empty<Measurement<double>>();
        public volatile Measurement<double>[] ProcessingRate = Array.Empty<Measurement<double>>();
        public volatile Measurement<double>[] RateLimit = Array.Empty<Measurement<double>>();
    }

    private static IEnumerable<Measurement<double>> ObserveRates(Func<Gauges, Measurement<double>[]> figures)
    {
        foreach (var gauges in GaugesByRun.Values)
            foreach (var m in figures(gauges)) yield return m;
    }

    private static IEnumerable<Measurement<long>> Observe(Func<Gauges, Measurement<long>[]> figures)
    {
        foreach (var gauges in GaugesByRun.Values)
            foreach (var m in figures(gauges)) yield return m;
    }

    private readonly KeyValuePair<string, object?> _pipeline;
    // Keys last reported per operator: the up-down counter is told the change.
    private readonly Dictionary<string, long> _reportedKeys = new(StringComparer.Ordinal);

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

    public void BatchDone(long since, bool replayed, IReadOnlyList<StateOperatorProgress> state)
    {
        Batches.Add(1, _pipeline, new KeyValuePair<string, object?>("replayed", replayed));
        if (BatchDuration.Enabled) BatchDuration.Record(Stopwatch.GetElapsedTime(since).TotalSeconds, _pipeline);
        foreach (var op in state)
        {
            long reported = _reportedKeys.GetValueOrDefault(op.OperatorId);
            if (op.Keys != reported) StateKeys.Add(op.Keys - reported, _pipeline, Operator(op.OperatorId));
            _reportedKeys[op.OperatorId] = op.Keys;
            if (op.DeltaBytes is long delta && StateDeltaSize.Enabled) StateDeltaSize.Record(delta, _pipeline, Operator(op.OperatorId));
        }

        if (StateSnapshotSize.Enabled && state.Any(op => op.SnapshotBytes is not null))
        {
            GaugeFigures().SnapshotSizes = state.Where(op => op.SnapshotBytes is not null)
                .Select(op => new Measurement<long>(op.SnapshotBytes!.Value, _pipeline, Operator(op.OperatorId))).ToArray();
        }
    }

    private static KeyValuePair<string, object?> Operator(string id) => new("operator", id);

    private Gauges GaugeFigures() => GaugesByRun.GetOrAdd(this, _ => new Gauges());

    /// <summary>A checkpoint file was written (the checkpoint log calls this for offsets, commits and snapshots).</summary>
    public void CheckpointFileWritten(string file, long bytes, TimeSpan duration)
    {
        var kind = new KeyValuePair<string, object?>("file", file);
        if (CheckpointWriteSize.Enabled) CheckpointWriteSize.Record(bytes, _pipeline, kind);
        if (CheckpointWriteDuration.Enabled) CheckpointWriteDuration.Record(duration.TotalSeconds, _pipeline, kind);
    }

    /// <summary>The last new batch's input and processing rates, for the gauges.</summary>
    public void Rates(double inputPerSecond, double processedPerSecond, double? rateLimit)
    {
        if (!InputRate.Enabled && !ProcessingRate.Enabled && !RateLimit.Enabled) return;
        var gauges = GaugeFigures();
        gauges.InputRate = new[] { new Measurement<double>(inputPerSecond, _pipeline) };
        gauges.ProcessingRate = new[] { new Measurement<double>(processedPerSecond, _pipeline) };
        if (rateLimit is { } limit) gauges.RateLimit = new[] { new Measurement<double>(limit, _pipeline) };
    }

    /// <summary>Each watermark stage's watermark after the last batch, for the gauge.</summary>
    public void Watermarks(IReadOnlyList<WatermarkProgress> watermarks)
    {
        if (!Watermark.Enabled || watermarks.Count == 0) return;
        GaugeFigures().Watermarks = watermarks.Select(w => new Measurement<long>(w.WatermarkMs, _pipeline, Operator(w.OperatorId))).ToArray();
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
        GaugeFigures().Lag = measurements.ToArray();
    }

    /// <summary>At the end of a run: the state it held is no longer this process's to report.</summary>
    public void Stopped()
    {
        GaugesByRun.TryRemove(this, out _);
        foreach (var (id, keys) in _reportedKeys)
            if (keys != 0) StateKeys.Add(-keys, _pipeline, Operator(id));
        _reportedKeys.Clear();
    }
}
