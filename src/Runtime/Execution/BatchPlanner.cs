using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Sources;

namespace PipelineDsl.Execution;

/// <summary>The end of every source partition when a bounded (available-now) run started: the run stops there.</summary>
internal sealed class RunTargets
{
    private readonly Dictionary<string, Dictionary<string, long>> _ends;

    public RunTargets(Dictionary<string, Dictionary<string, long>> ends) => _ends = ends;

    public bool TryGet(string source, string partition, out long end) => _ends[source].TryGetValue(partition, out end);
}

/// <summary>
/// The one owner of source positions: where each source partition was read up to after the last batch, and
/// which sources the checkpoint already knows. It plans each batch's ranges from them, checks a logged plan
/// against them during a recovery, and is the only writer of positions: after a batch (<see cref="Advance"/>)
/// and from a snapshot (<see cref="Restore"/>).
/// </summary>
internal sealed class BatchPlanner
{
    private readonly IReadOnlyList<(string Id, ISourceExecutor Executor)> _sources;
    private readonly IReadOnlyDictionary<string, object> _connectors;
    private readonly long? _maxRecordsPerPartition;
    private readonly TimeProvider _clock;
    private long _lastPlannedAtMs = long.MinValue;
    private readonly Dictionary<string, SortedDictionary<string, long>> _positions = new(StringComparer.Ordinal);

    // Sources the checkpoint already knows. A partition of a known source that appears later starts at 0
    // (it is new data); the partitions of a source new to the checkpoint (a new checkpoint, or a source
    // added by a new build) start where the source's own starting position says.
    private readonly HashSet<string> _knownSources = new(StringComparer.Ordinal);

    // The end of each partition as first asked during a recovery: data only grows, so one answer serves
    // every logged plan checked (a Kafka source answers with a broker round trip).
    private readonly Dictionary<(string Source, string Partition), long> _knownEnds = new();

    public BatchPlanner(IReadOnlyList<(string Id, ISourceExecutor Executor)> sources, IReadOnlyDictionary<string, object> connectors, long? maxRecordsPerPartition, TimeProvider? clock = null)
    {
        _clock = clock ?? TimeProvider.System;
        _sources = sources;
        _connectors = connectors;
        _maxRecordsPerPartition = maxRecordsPerPartition;
        foreach (var (id, _) in sources) _positions[id] = new SortedDictionary<string, long>(StringComparer.Ordinal);
    }

    /// <summary>Each source's partitions and where they were read up to (read-only to everyone but this class).</summary>
    public IReadOnlyDictionary<string, SortedDictionary<string, long>> Positions => _positions;

    /// <summary>A copy of one source's positions, for a listener that runs after the next batch moved them on.</summary>
    public IReadOnlyDictionary<string, long> CopyOf(string source) => new Dictionary<string, long>(_positions[source], StringComparer.Ordinal);

    /// <summary>The batch ran (or its state delta was applied): every planned partition is now read up to its range's end.</summary>
    public void Advance(OffsetRecord plan)
    {
        _lastPlannedAtMs = Math.Max(_lastPlannedAtMs, plan.PlannedAtMs);
        foreach (var (id, _) in _sources)
        {
            if (!plan.Sources.TryGetValue(id, out var ranges)) continue;
            foreach (var (partition, range) in ranges) _positions[id][partition] = range.To;
            _knownSources.Add(id);
        }
    }

    /// <summary>Positions from a snapshot; those of a source this build no longer has are dropped.</summary>
    public void Restore(IReadOnlyDictionary<string, Dictionary<string, long>> positions)
    {
        foreach (var (source, partitions) in positions)
        {
            if (!_positions.TryGetValue(source, out var known)) continue; // a retired source
            foreach (var (partition, position) in partitions) known[partition] = position;
            _knownSources.Add(source);
        }
    }

    /// <summary>Forgets everything (a snapshot that turned out unusable after its positions were taken).</summary>
    public void Clear()
    {
        foreach (var p in _positions.Values) p.Clear();
        _knownSources.Clear();
    }

    /// <summary>Every partition's end now: an available-now run processes up to here and stops.</summary>
    public async Task<RunTargets> CaptureTargetsAsync()
    {
        var targets = new Dictionary<string, Dictionary<string, long>>(StringComparer.Ordinal);
        foreach (var (id, executor) in _sources)
        {
            var ends = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var partition in await executor.ListAsync(CancellationToken.None).ConfigureAwait(false))
                ends[partition] = await executor.EndAsync(partition, CancellationToken.None).ConfigureAwait(false);
            targets[id] = ends;
        }

        return new RunTargets(targets);
    }

    // The end each partition reported when the last batch was planned: how far the data goes (for lag).
    private readonly Dictionary<(string Source, string Partition), long> _ends = new();

    /// <summary>The end position <paramref name="partition"/> of <paramref name="source"/> reported when the last batch was planned, if it was listed.</summary>
    public long? EndOf(string source, string partition) => _ends.TryGetValue((source, partition), out long end) ? end : null;

    /// <summary>
    /// Plans batch <paramref name="batchId"/>: for every partition, known or newly listed, the range from its
    /// position to what is available (capped by <c>MaxRecordsPerPartition</c>, by <paramref name="targets"/> in a bounded
    /// run, and by <paramref name="recordBudget"/>, the backpressure limit for the whole batch).
    /// </summary>
    public async Task<OffsetRecord> PlanAsync(long batchId, RunTargets? targets, long? recordBudget = null)
    {
        // First where every partition stands and what it has; then the caps, which share a budget between partitions.
        var open = new List<(string Source, string Partition, long From, long Available)>();
        var sources = new SortedDictionary<string, SortedDictionary<string, PartitionRange>>(StringComparer.Ordinal);
        foreach (var (id, executor) in _sources)
        {
            var known = _positions[id];
            var ranges = new SortedDictionary<string, PartitionRange>(StringComparer.Ordinal);
            var listed = await executor.ListAsync(CancellationToken.None).ConfigureAwait(false);

            foreach (var partition in listed.Union(known.Keys).Distinct().OrderBy(p => p, StringComparer.Ordinal))
            {
                long from = known.TryGetValue(partition, out long position)
                    ? position
                    : await executor.InitialAsync(partition, partitionIsNew: _knownSources.Contains(id), CancellationToken.None).ConfigureAwait(false);
                ranges[partition] = new PartitionRange(from, from);
                if (!listed.Contains(partition)) continue;
                long end = await executor.EndAsync(partition, CancellationToken.None).ConfigureAwait(false);
                _ends[(id, partition)] = end;
                // In every mode, bounded too: data that shrank below what was processed was rewritten or
                // truncated, and reading on from the old position would skip or repeat records silently.
                if (end < from)
                    throw new InvalidDataException($"Source '{id}', partition '{partition}': the data now ends at position {end}, before position {from}, which earlier batches already processed. A source must only grow: restore the input, or start a new checkpoint.");
                long available = end;
                if (targets is not null) available = targets.TryGet(id, partition, out long target) ? Math.Min(end, Math.Max(target, from)) : from;
                if (available > from) open.Add((id, partition, from, available));
            }

            sources[id] = ranges;
            _knownSources.Add(id);
        }

        var shares = recordBudget is long budget ? ShareBudget(open, budget) : null;
        for (int i = 0; i < open.Count; i++)
        {
            var (id, partition, from, available) = open[i];
            long? cap = _maxRecordsPerPartition;
            if (shares is not null) cap = Math.Min(cap ?? long.MaxValue, shares[i]);
            var executor = _sources.First(s => s.Id == id).Executor;
            long to = cap is long c ? await executor.AdvanceAsync(partition, from, available, c, CancellationToken.None).ConfigureAwait(false) : available;
            sources[id][partition] = new PartitionRange(from, to);
        }

        // A batch's planned time is its records' processing time (BatchTime): it never goes back behind a batch this run
        // executed, even when the system clock is set back, so processing-time windows never see time reverse.
        long plannedAt = Math.Max(_clock.GetUtcNow().ToUnixTimeMilliseconds(), _lastPlannedAtMs);
        return new OffsetRecord(batchId, plannedAt, sources);
    }

    /// <summary>
    /// Each open partition's share of a batch's record budget (Spark's <c>maxMessagesPerPartition</c>): equal parts
    /// per source that has data (positions of different sources count different things: records, bytes), and within a
    /// source in proportion to each partition's backlog, at least one record each so that no partition starves.
    /// </summary>
    internal static long[] ShareBudget(IReadOnlyList<(string Source, string Partition, long From, long Available)> open, long budget)
    {
        var shares = new long[open.Count];
        var bySource = Enumerable.Range(0, open.Count).GroupBy(i => open[i].Source, StringComparer.Ordinal).ToList();
        if (bySource.Count == 0) return shares;
        double perSource = (double)budget / bySource.Count;
        foreach (var partitions in bySource)
        {
            double backlog = partitions.Sum(i => (double)(open[i].Available - open[i].From));
            foreach (int i in partitions)
                shares[i] = Math.Max(1, (long)Math.Floor(perSource * (open[i].Available - open[i].From) / backlog));
        }

        return shares;
    }

    /// <summary>
    /// A logged batch's ranges start where the previous batch ended: a range of a known partition that starts
    /// anywhere else comes from another checkpoint (or another run of this one), and would skip or repeat input.
    /// </summary>
    public void CheckContinuity(OffsetRecord plan, string name)
    {
        foreach (var source in _knownSources)
        {
            // The planner lists every partition it knows, even one with nothing new: a plan without one was cut.
            if (!_positions.TryGetValue(source, out var knownPartitions) || knownPartitions.Count == 0) continue;
            if (!plan.Sources.TryGetValue(source, out var planned) || knownPartitions.Keys.Any(p => !planned.ContainsKey(p)))
                throw new CheckpointCorruptException(
                    $"Checkpoint file '{name}' does not plan every partition of source '{source}' that the batch before it read: it was cut or altered and is not used.");
        }

        foreach (var (source, ranges) in plan.Sources)
        {
            if (!_positions.TryGetValue(source, out var known)) continue; // a retired source
            foreach (var (partition, range) in ranges)
            {
                if (known.TryGetValue(partition, out long position) && position != range.From)
                    throw new CheckpointCorruptException(
                        $"Checkpoint file '{name}' plans source '{source}', partition '{partition}' from position {range.From}, but the batch before it ended at {position}: "
                        + "it does not continue this checkpoint (a file from another checkpoint or an older run) and is not used.");
            }
        }
    }

    /// <summary>
    /// Every range of a logged plan lies within what its source holds: a range past the end, or of a partition
    /// the source does not have, was altered (or the source lost data) and is not read.
    /// </summary>
    public async Task CheckWithinSourcesAsync(OffsetRecord plan, string name)
    {
        foreach (var (id, executor) in _sources)
        {
            if (!plan.Sources.TryGetValue(id, out var ranges)) continue;
            foreach (var (partition, range) in ranges)
            {
                if (range.Count == 0) continue;
                long end;
                try
                {
                    if (!_knownEnds.TryGetValue((id, partition), out end))
                        _knownEnds[(id, partition)] = end = await executor.EndAsync(partition, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is InvalidDataException or FileNotFoundException or ArgumentException or FormatException)
                {
                    throw new CheckpointCorruptException($"Checkpoint file '{name}' plans source '{id}', partition '{partition}', which the source cannot read: {e.Message}", e);
                }

                if (range.To > end)
                    throw new CheckpointCorruptException(
                        $"Checkpoint file '{name}' plans source '{id}', partition '{partition}' up to position {range.To}, but the source ends at {end}: the file was altered, or the source lost data.");
            }
        }
    }

    /// <summary>
    /// The bounded sources whose every partition this batch's plan reads to the end: event time downstream of
    /// them is complete. A function of the logged plan, so a replay decides the same.
    /// </summary>
    public HashSet<string> FinishedSources(OffsetRecord plan)
    {
        var finished = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (id, _) in _sources)
        {
            if (_connectors[id] is not IBoundedSource bounded || !plan.Sources.TryGetValue(id, out var ranges) || ranges.Count == 0) continue;
            if (ranges.All(r => bounded.GetFinalPosition(r.Key) is long end && r.Value.To >= end)) finished.Add(id);
        }

        return finished;
    }

    /// <summary>What sources hold after their last complete record at the end of a bounded run (see <see cref="IPartialRecordSource"/>).</summary>
    public async Task<IReadOnlyList<UnreadTail>> UnreadTailsAsync()
    {
        var tails = new List<UnreadTail>();
        foreach (var (id, _) in _sources)
        {
            if (_connectors[id] is not IPartialRecordSource partial) continue;
            foreach (var (partition, position) in _positions[id])
            {
                long length = await partial.GetIncompleteTailAsync(partition, position, CancellationToken.None).ConfigureAwait(false);
                if (length > 0) tails.Add(new UnreadTail(id, partition, position, length));
            }
        }

        return tails;
    }
}
