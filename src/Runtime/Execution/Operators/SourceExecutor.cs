using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.Sinks;
using PipelineDsl.Sources;

namespace PipelineDsl.Execution;

/// <summary>The driver's untyped view of a source executor: planning calls and reading a batch's ranges.</summary>
internal interface ISourceExecutor
{
    OperatorNode Node { get; }

    Task<IReadOnlyList<string>> ListAsync(CancellationToken ct);

    Task<long> InitialAsync(string partition, bool partitionIsNew, CancellationToken ct);

    Task<long> EndAsync(string partition, CancellationToken ct);

    Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken ct);

    /// <summary>Reads every range (partitions in parallel) into the output, in partition order; returns the record count.</summary>
    Task<long> ReadAsync(IReadOnlyDictionary<string, Checkpointing.PartitionRange> ranges, BadRecordPolicy policy, List<string> deadLetters, CancellationToken ct);
}

internal sealed class SourceExecutor<T> : OperatorExecutor<T>, ISourceExecutor
{
    private readonly ISourceConnector<T> _connector;

    public SourceExecutor(OperatorNode node, ISourceConnector<T> connector) : base(node) => _connector = connector;

    /// <summary>Filled by <see cref="ReadAsync"/> before the batch's operators run.</summary>
    public override void Execute(BatchContext batch)
    {
    }

    public Task<IReadOnlyList<string>> ListAsync(CancellationToken ct) => _connector.ListPartitionsAsync(ct);

    public Task<long> InitialAsync(string partition, bool partitionIsNew, CancellationToken ct) => _connector.GetInitialPositionAsync(partition, partitionIsNew, ct);

    public Task<long> EndAsync(string partition, CancellationToken ct) => _connector.GetEndPositionAsync(partition, ct);

    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken ct) =>
        _connector.AdvanceAsync(partition, from, available, maxRecords, ct);

    // One collector per partition, reused from batch to batch so that reading allocates no new lists.
    private readonly Dictionary<string, Collector> _collectors = new(StringComparer.Ordinal);

    public async Task<long> ReadAsync(IReadOnlyDictionary<string, Checkpointing.PartitionRange> ranges, BadRecordPolicy policy, List<string> deadLetters, CancellationToken ct)
    {
        var work = ranges.Where(r => r.Value.Count > 0).ToList();
        var parts = new Collector[work.Count];
        for (int i = 0; i < work.Count; i++)
        {
            if (!_collectors.TryGetValue(work[i].Key, out var collector)) _collectors[work[i].Key] = collector = new Collector(Node.Id, work[i].Key);
            collector.Reset(policy, (int)Math.Min(work[i].Value.Count, 1 << 20));
            parts[i] = collector;
        }

        if (parts.Length == 1)
        {
            await _connector.ReadAsync(work[0].Key, work[0].Value.From, work[0].Value.To, parts[0], ct).ConfigureAwait(false);
        }
        else
        {
            await Task.WhenAll(work.Select((range, i) => Task.Run(
                () => _connector.ReadAsync(range.Key, range.Value.From, range.Value.To, parts[i], ct), ct))).ConfigureAwait(false);
        }

        long count = 0;
        Output.EnsureCapacity(parts.Sum(p => p.Records.Count));
        foreach (var part in parts)
        {
            Output.AddRange(part.Records);
            deadLetters.AddRange(part.DeadLetters);
            count += part.Records.Count + part.DeadLetters.Count;
            part.Records.Clear();
        }

        return count;
    }

    private sealed class Collector : ISourceOutput<T>
    {
        private readonly string _source;
        private readonly string _partition;
        private BadRecordPolicy _policy;

        public Collector(string source, string partition)
        {
            _source = source;
            _partition = partition;
        }

        public List<T> Records { get; } = new();

        public List<string> DeadLetters { get; } = new();

        public void Reset(BadRecordPolicy policy, int expected)
        {
            _policy = policy;
            Records.Clear();
            Records.EnsureCapacity(expected);
            DeadLetters.Clear();
        }

        public void Emit(long position, T record)
        {
            // A store through a span: List.Add checks the array's covariance per reference in shared generic code.
            var records = Records;
            int count = records.Count;
            if (count == records.Capacity) records.EnsureCapacity(count + 1);
            CollectionsMarshal.SetCount(records, count + 1);
            CollectionsMarshal.AsSpan(records)[count] = record;
        }

        public void Reject(long position, string raw, Exception error)
        {
            if (_policy == BadRecordPolicy.Fail) throw new BadRecordException(_source, _partition, position, raw, error);
            var buffer = new System.IO.MemoryStream();
            using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("source", _source);
                json.WriteString("partition", _partition);
                json.WriteNumber("position", position);
                json.WriteString("error", error.Message);
                json.WriteString("record", raw);
                json.WriteEndObject();
            }

            DeadLetters.Add(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
        }
    }
}
