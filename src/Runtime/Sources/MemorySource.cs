using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>
/// An in-memory source for tests and benchmarks: partitions of appended records, each record's position
/// its index. Records are kept (never trimmed) so any range can be replayed.
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class MemorySource<T> : ISourceConnector<T>
{
    private readonly List<T>[] _partitions;
    private readonly StartingPosition _start;
    private readonly object _gate = new();

    /// <summary>Creates a source with <paramref name="partitions"/> partitions named "0", "1", ….</summary>
    public MemorySource(int partitions = 1, StartingPosition start = StartingPosition.Earliest)
    {
        if (partitions < 1) throw new ArgumentOutOfRangeException(nameof(partitions), "partitions must be 1 or more.");
        _partitions = Enumerable.Range(0, partitions).Select(_ => new List<T>()).ToArray();
        _start = start;
    }

    /// <inheritdoc />
    public string Description => $"memory ({_partitions.Length} partitions)";

    /// <summary>Appends records to a partition.</summary>
    public void Add(int partition, IEnumerable<T> records)
    {
        lock (_gate) _partitions[partition].AddRange(records);
    }

    /// <summary>Appends one record to a partition.</summary>
    public void Add(int partition, T record)
    {
        lock (_gate) _partitions[partition].Add(record);
    }

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>(Enumerable.Range(0, _partitions.Length).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());

    /// <inheritdoc />
    public async Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) =>
        _start == StartingPosition.Earliest || partitionIsNew ? 0 : await GetEndPositionAsync(partition, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken)
    {
        lock (_gate) return Task.FromResult((long)Partition(partition).Count);
    }

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        Task.FromResult(Math.Min(available, from + maxRecords));

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var list = Partition(partition);
            if (to > list.Count || from < 0) throw new System.IO.InvalidDataException($"Memory partition {partition} has {list.Count} records; positions [{from}, {to}) were asked for.");
            for (long i = from; i < to; i++) output.Emit(i, list[(int)i]);
        }

        return Task.CompletedTask;
    }

    private List<T> Partition(string partition) =>
        int.TryParse(partition, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index) && index < _partitions.Length
            ? _partitions[index]
            : throw new System.IO.InvalidDataException($"The memory source has no partition '{partition}' (it has {_partitions.Length}, named 0 to {_partitions.Length - 1}).");
}
