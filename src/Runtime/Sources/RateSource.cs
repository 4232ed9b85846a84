using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>A record of the <see cref="RateSource"/>: a sequence number and an event time derived from it.</summary>
/// <param name="Value">0, 1, 2, … across all partitions.</param>
/// <param name="TimestampMs">Event time in Unix milliseconds: the start time plus the value divided by the rate.</param>
public readonly record struct RateRecord(long Value, long TimestampMs);

/// <summary>
/// A deterministic generator, like Spark's rate source: record n of partition p has value
/// <c>n × partitions + p</c> and an event time computed from the value, so any range can be replayed
/// exactly. In continuous use it makes <see cref="RateSourceOptions.RecordsPerSecond"/> records available
/// per second of wall time; with <see cref="RateSourceOptions.TotalRecords"/> it stops there.
/// </summary>
public sealed class RateSource : ISourceConnector<RateRecord>
{
    private readonly RateSourceOptions _options;
    // Stopwatch, not Environment.TickCount64: on Linux the tick count is a coarse clock (about 4 ms steps), which
    // would hold each record back by up to a step after its time and add that to every latency measured.
    private readonly long _wallStart;

    /// <summary>Creates the source.</summary>
    public RateSource(RateSourceOptions? options = null)
    {
        _options = options ?? new RateSourceOptions();
        _options.Validate();
        _wallStart = System.Diagnostics.Stopwatch.GetTimestamp();
    }

    /// <inheritdoc />
    public string Description => $"rate ({_options.RecordsPerSecond}/s, {_options.Partitions} partitions)";

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>(Enumerable.Range(0, _options.Partitions).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray());

    /// <inheritdoc />
    public async Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) =>
        _options.StartingPosition == StartingPosition.Earliest ? 0 : await GetEndPositionAsync(partition, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken)
    {
        int p = int.Parse(partition, System.Globalization.CultureInfo.InvariantCulture);
        long total = _options.TotalRecords ?? (long)(System.Diagnostics.Stopwatch.GetElapsedTime(_wallStart).TotalSeconds * _options.RecordsPerSecond);
        // Values p, p + P, p + 2P, … below total belong to partition p.
        long count = total <= p ? 0 : (total - p + _options.Partitions - 1) / _options.Partitions;
        return Task.FromResult(count);
    }

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        Task.FromResult(Math.Min(available, from + maxRecords));

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<RateRecord> output, CancellationToken cancellationToken)
    {
        int p = int.Parse(partition, System.Globalization.CultureInfo.InvariantCulture);
        for (long n = from; n < to; n++)
        {
            long value = n * _options.Partitions + p;
            output.Emit(n, new RateRecord(value, _options.StartTimeMs + value * 1000 / _options.RecordsPerSecond));
        }

        return Task.CompletedTask;
    }
}

/// <summary>Options of the <see cref="RateSource"/>.</summary>
public sealed class RateSourceOptions
{
    /// <summary>Records per second (default 1000).</summary>
    public long RecordsPerSecond { get; set; } = 1000;

    /// <summary>Number of partitions (default 1).</summary>
    public int Partitions { get; set; } = 1;

    /// <summary>When set, exactly this many records exist from the start (a bounded, fully deterministic source).</summary>
    public long? TotalRecords { get; set; }

    /// <summary>Event time of value 0, in Unix milliseconds (default 2026-01-01T00:00:00Z).</summary>
    public long StartTimeMs { get; set; } = 1767225600000;

    /// <summary>Where a new checkpoint starts (default earliest).</summary>
    public StartingPosition StartingPosition { get; set; } = StartingPosition.Earliest;

    internal void Validate()
    {
        if (RecordsPerSecond < 1) throw new ArgumentOutOfRangeException(nameof(RecordsPerSecond), "RateSourceOptions.RecordsPerSecond must be 1 or more.");
        if (Partitions < 1) throw new ArgumentOutOfRangeException(nameof(Partitions), "RateSourceOptions.Partitions must be 1 or more.");
        if (TotalRecords < 0) throw new ArgumentOutOfRangeException(nameof(TotalRecords), "RateSourceOptions.TotalRecords must be 0 or more.");
    }
}
