using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Testing;

/// <summary>
/// The records a test gives one source of the pipeline (<see cref="PipelineTestDriver.Input{T}"/>): a replayable
/// source in memory, so that what was added survives a <see cref="PipelineTestDriver.CrashAndRestore"/> as data in
/// Kafka or in files would. The next batch reads everything added since the last one.
/// </summary>
/// <typeparam name="T">The source's record type.</typeparam>
public sealed class TestInput<T>
{
    private readonly List<Entry>[] _partitions;

    private readonly record struct Entry(T Record, string? BadRaw);

    internal TestInput(string sourceId, int partitions)
    {
        SourceId = sourceId;
        _partitions = Enumerable.Range(0, partitions).Select(_ => new List<Entry>()).ToArray();
        Connector = new Source(this);
    }

    /// <summary>The source's id in the pipeline.</summary>
    public string SourceId { get; }

    internal ISourceConnector<T> Connector { get; }

    /// <summary>Adds records to partition 0 (read by the next batch, in this order).</summary>
    public TestInput<T> Add(params T[] records) => AddTo(0, records);

    /// <summary>Adds records to partition 0.</summary>
    public TestInput<T> Add(IEnumerable<T> records) => AddTo(0, records.ToArray());

    /// <summary>Adds records to one partition (partitions are read in parallel, each in order).</summary>
    public TestInput<T> AddTo(int partition, params T[] records)
    {
        var list = Partition(partition);
        lock (list) list.AddRange(records.Select(r => new Entry(r, null)));
        return this;
    }

    /// <summary>
    /// Adds a record the source cannot decode (its raw text), as a file or Kafka source reports a bad line: the pipeline's
    /// <see cref="BadRecordPolicy"/> decides (the batch fails, or the record goes to <see cref="PipelineTestDriver.DeadLetters"/>).
    /// </summary>
    public TestInput<T> AddBadRecord(string raw, int partition = 0)
    {
        var list = Partition(partition);
        lock (list) list.Add(new Entry(default!, raw ?? throw new ArgumentNullException(nameof(raw))));
        return this;
    }

    private List<Entry> Partition(int partition) =>
        partition >= 0 && partition < _partitions.Length
            ? _partitions[partition]
            : throw new ArgumentOutOfRangeException(nameof(partition), $"Source '{SourceId}' has {_partitions.Length} partition(s) in this driver: partition {partition} does not exist. Ask for more with Input(source, partitions).");

    private sealed class Source(TestInput<T> input) : ISourceConnector<T>
    {
        public string Description => $"test input '{input.SourceId}'";

        public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) =>
            Task.FromResult<IReadOnlyList<string>>(Enumerable.Range(0, input._partitions.Length).Select(p => p.ToString(CultureInfo.InvariantCulture)).ToArray());

        public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => Task.FromResult(0L);

        public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken)
        {
            var list = input._partitions[int.Parse(partition, CultureInfo.InvariantCulture)];
            lock (list) return Task.FromResult((long)list.Count);
        }

        public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
            Task.FromResult(Math.Min(available, from + maxRecords));

        public Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
        {
            var list = input._partitions[int.Parse(partition, CultureInfo.InvariantCulture)];
            Entry[] range;
            lock (list) range = list.GetRange((int)from, (int)(to - from)).ToArray();
            for (int i = 0; i < range.Length; i++)
            {
                if (range[i].BadRaw is { } raw) output.Reject(from + i, raw, new FormatException("the test added it as a bad record"));
                else output.Emit(from + i, range[i].Record);
            }

            return Task.CompletedTask;
        }
    }
}

/// <summary>
/// What one sink of the pipeline received (<see cref="PipelineTestDriver.Output{T}"/>), batch by batch. Like a real
/// exactly-once sink, a batch written again (re-run after a crash) replaces its earlier records.
/// </summary>
/// <typeparam name="T">The sink's record type.</typeparam>
public sealed class TestOutput<T>
{
    private readonly SortedDictionary<long, IReadOnlyList<T>> _batches = new();

    internal TestOutput(string sinkId)
    {
        SinkId = sinkId;
        Connector = new Sink(this);
    }

    /// <summary>The sink's id in the pipeline.</summary>
    public string SinkId { get; }

    internal ISinkConnector<T> Connector { get; }

    /// <summary>How many times a batch was written (more than the batches when one was re-run after a crash).</summary>
    public int Writes { get; private set; }

    /// <summary>Every record received, in batch order.</summary>
    public IReadOnlyList<T> All
    {
        get
        {
            lock (_batches) return _batches.Values.SelectMany(b => b).ToList();
        }
    }

    /// <summary>The records of batch <paramref name="batchId"/> (empty when it wrote none).</summary>
    public IReadOnlyList<T> Batch(long batchId)
    {
        lock (_batches) return _batches.TryGetValue(batchId, out var records) ? records : Array.Empty<T>();
    }

    /// <summary>Each batch's records by batch id.</summary>
    public IReadOnlyDictionary<long, IReadOnlyList<T>> Batches
    {
        get
        {
            lock (_batches) return new SortedDictionary<long, IReadOnlyList<T>>(_batches);
        }
    }

    private sealed class Sink(TestOutput<T> output) : ISinkConnector<T>
    {
        public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
        {
            lock (output._batches)
            {
                output._batches[batchId] = records.ToArray();
                output.Writes++;
            }

            return Task.CompletedTask;
        }
    }
}

/// <summary>The driver's clock: still unless the test moves it, so that runs are byte-identical.</summary>
internal sealed class TestClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by)
    {
        if (by < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(by), $"Time moves forward only: {by} was asked.");
        _now += by;
    }
}

/// <summary>What a stream join keeps for one key (<see cref="PipelineTestDriver.JoinStateOf{TKey, TLeft, TRight}"/>): each side's records, in the order they arrived.</summary>
/// <typeparam name="TLeft">The left records' type.</typeparam>
/// <typeparam name="TRight">The right records' type.</typeparam>
/// <param name="Left">The left records kept.</param>
/// <param name="Right">The right records kept.</param>
public sealed record JoinState<TLeft, TRight>(IReadOnlyList<TLeft> Left, IReadOnlyList<TRight> Right);
