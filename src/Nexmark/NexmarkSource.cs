using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Sources;

namespace PipelineDsl.Nexmark;

/// <summary>
/// The Nexmark generator as a replayable source, like Spark's rate source but with the Nexmark event mix.
/// Partition <c>i</c> is generator <c>i</c> (of <see cref="NexmarkConfiguration.NumEventGenerators"/>), which
/// owns a disjoint range of event ids; a position is the generator's event number, so any range is replayed
/// exactly. With <see cref="NexmarkConfiguration.NumEvents"/> the source is bounded: event-time operators see
/// the end of input and fire their last windows.
/// </summary>
public sealed class NexmarkSource : ISourceConnector<Event>, IBoundedSource
{
    private readonly NexmarkGenerator[] _generators;
    private readonly NexmarkConfiguration _config;
    private readonly Stopwatch _wallClock = Stopwatch.StartNew();

    /// <summary>Creates the source.</summary>
    /// <exception cref="ArgumentException">An option is invalid; the message names it.</exception>
    public NexmarkSource(NexmarkConfiguration? configuration = null)
    {
        _config = (configuration ?? new NexmarkConfiguration()).Clone();
        _config.Validate();
        _generators = Enumerable.Range(0, _config.NumEventGenerators).Select(i => new NexmarkGenerator(_config, i)).ToArray();
    }

    /// <summary>The generators, one per partition.</summary>
    public IReadOnlyList<NexmarkGenerator> Generators => _generators;

    /// <inheritdoc />
    public string Description => $"nexmark ({_config.NumEventGenerators} generators, {(_config.NumEvents > 0 ? _config.NumEvents.ToString(CultureInfo.InvariantCulture) + " events" : "unbounded")})";

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<string>>(_generators.Select(g => g.Index.ToString(CultureInfo.InvariantCulture)).ToArray());

    /// <inheritdoc />
    public Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) => Task.FromResult(0L);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken)
    {
        var generator = Generator(partition);
        if (_config.MaxEmitSpeed) return Task.FromResult(generator.Count);
        // Real-time replay: event k is due when ts(k) - baseTime of wall time has passed.
        long elapsedUs = _wallClock.ElapsedTicks * 1_000_000 / Stopwatch.Frequency;
        long due = (long)(elapsedUs / _config.InterEventDelayUs) + 1;
        return Task.FromResult(Math.Min(generator.Count, Math.Max(0, due)));
    }

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken) =>
        Task.FromResult(Math.Min(available, from + maxRecords));

    /// <inheritdoc />
    public Task ReadAsync(string partition, long from, long to, ISourceOutput<Event> output, CancellationToken cancellationToken)
    {
        var generator = Generator(partition);
        if (from < 0 || to > generator.Count || from > to)
            throw new ArgumentOutOfRangeException(nameof(to), $"Nexmark generator {partition} has events 0 to {generator.Count - 1}; range [{from}, {to}) is outside it.");
        for (long k = from; k < to; k++) output.Emit(k, generator.Generate(k));
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public long? GetFinalPosition(string partition) => _config.NumEvents > 0 ? Generator(partition).Count : null;

    private NexmarkGenerator Generator(string partition)
    {
        if (int.TryParse(partition, NumberStyles.None, CultureInfo.InvariantCulture, out int i) && i >= 0 && i < _generators.Length) return _generators[i];
        throw new ArgumentException($"The Nexmark source has partitions 0 to {_generators.Length - 1}; '{partition}' is not one of them.", nameof(partition));
    }
}
