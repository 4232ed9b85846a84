using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.CompilerServices;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;

namespace PipelineDsl.Execution;

/// <summary>
/// The event-time progress an operator sees in a batch. <see cref="Previous"/> is the watermark at the end of
/// the previous batch: records older than it are late (their windows have fired). <see cref="Current"/> is the
/// watermark after this batch's input: windows that end at or before it fire in this batch. Both are
/// functions of the logged batch ranges, so a replayed batch fires exactly the same windows.
/// </summary>
internal interface IWatermark
{
    long Previous { get; }

    long Current { get; }
}

internal sealed class MinimumWatermark : IWatermark
{
    private readonly IWatermark[] _inputs;

    public MinimumWatermark(IWatermark[] inputs) => _inputs = inputs;

    public long Previous => _inputs.Min(i => i.Previous);

    public long Current => _inputs.Min(i => i.Current);
}

/// <summary>
/// Passes records through and advances the watermark to (largest event time seen) − (allowed out-of-orderness).
/// When every source upstream is bounded and fully read, the watermark jumps to the end of time so that all
/// remaining windows fire. State: the largest event time and the watermark.
/// </summary>
internal sealed class WatermarkExecutor<T> : OperatorExecutor<T>, IStatefulExecutor, IWatermark
{
    private readonly OperatorExecutor<T> _input;
    private readonly WatermarkNode<T> _node;
    private readonly IReadOnlyList<string> _sources;
    private long _maxTime = long.MinValue;

    public WatermarkExecutor(WatermarkNode<T> node, OperatorExecutor<T> input, IReadOnlyList<string> sources) : base(node)
    {
        _node = node;
        _input = input;
        _sources = sources;
    }

    public long Previous { get; private set; } = long.MinValue;

    public long Current { get; private set; } = long.MinValue;

    /// <summary>Format 1: the watermark, one integer.</summary>
    public int StateFormat => 1;

    public long KeyCount => 0;

    public override void Execute(BatchContext batch)
    {
        Previous = Current;
        var input = _input.Output;
        Output.AddRange(input);
        long max = _maxTime;
        var time = _node.TimeSelector;
        foreach (var record in CollectionsMarshal.AsSpan(input))
        {
            long t = time(record);
            if (t > max) max = t;
        }

        _maxTime = max;
        bool complete = _sources.Count > 0 && _sources.All(batch.FinishedSources.Contains);
        if (complete) Current = long.MaxValue;
        else if (max != long.MinValue) Current = Math.Max(Current, max - _node.MaxOutOfOrdernessMs);
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(2);
        writer.Write(_maxTime);
        writer.Write(Current);
    }

    public void RestoreSnapshot(ref MessagePackReader reader, long storedVersion)
    {
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"The state of watermark '{Node.Id}' is not a [max event time, watermark] pair.");
        _maxTime = reader.ReadInt64();
        Current = Previous = reader.ReadInt64();
    }

    public void Clear()
    {
        _maxTime = long.MinValue;
        Current = Previous = long.MinValue;
    }

    public void WriteDelta(MessagePackWriter writer, long batchId) => WriteSnapshot(writer);

    public void ApplyDelta(ref MessagePackReader reader, long storedVersion) => RestoreSnapshot(ref reader, storedVersion);
}

/// <summary>Reads the watermark's layout (format 1: <c>[largest event time seen, watermark]</c>) for <c>dump-state</c>.</summary>
internal static class WatermarkLayout
{
    public static void Dump(ref MessagePackReader r, JsonLines lines)
    {
        if (r.ReadArrayHeader() != 2 || lines.Full) return;
        var json = lines.Begin();
        json.WriteString("kind", OperatorKinds.Watermark);
        json.WriteNumber("maxEventTime", r.ReadInt64());
        json.WriteNumber("watermark", r.ReadInt64());
        lines.End();
    }
}
