using System;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;

namespace PipelineDsl;

/// <summary>
/// Writes every batch's <see cref="BatchProgress"/> as one JSON line into a rolling log: files
/// <c>progress-000001.jsonl</c>, <c>progress-000002.jsonl</c>, ... in a directory, a new file once the current one
/// holds <see cref="MaxFileBytes"/>, the oldest deleted beyond <see cref="MaxFiles"/>. Attach it to a runner with
/// <c>runner.BatchCompleted += log.Append</c> (the hosted service does, with the <c>ProgressLogDirectory</c> option).
/// </summary>
/// <remarks>
/// For people and tools that watch a job (Spark writes the same kind of record per trigger): lines are appended
/// without fsync, because the checkpoint, not this log, is the record of what was committed; a crash may lose the
/// last lines. A restart continues after the newest file.
/// </remarks>
public sealed class BatchProgressLog : IDisposable
{
    private readonly string _directory;
    private readonly object _gate = new();
    private FileStream? _file;
    private int _number;

    /// <summary>Opens (creating it when missing) the log in <paramref name="directory"/>.</summary>
    /// <exception cref="ArgumentException">A limit is not positive; the message names it.</exception>
    public BatchProgressLog(string directory, long maxFileBytes = 16 << 20, int maxFiles = 10)
    {
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("The progress log needs a directory.", nameof(directory));
        if (maxFileBytes < 1) throw new ArgumentException($"maxFileBytes is {maxFileBytes}: it must be positive.", nameof(maxFileBytes));
        if (maxFiles < 1) throw new ArgumentException($"maxFiles is {maxFiles}: keep at least one file.", nameof(maxFiles));
        _directory = Path.GetFullPath(directory);
        MaxFileBytes = maxFileBytes;
        MaxFiles = maxFiles;
        Directory.CreateDirectory(_directory);
        _number = Files().Select(NumberOf).DefaultIfEmpty(0).Max();
    }

    /// <summary>The size at which the log moves on to a new file.</summary>
    public long MaxFileBytes { get; }

    /// <summary>How many files are kept.</summary>
    public int MaxFiles { get; }

    /// <summary>The file being written, or null before the first line.</summary>
    public string? CurrentFile => _file?.Name;

    /// <summary>Appends <paramref name="progress"/> as one line.</summary>
    public void Append(BatchProgress progress)
    {
        if (progress is null) throw new ArgumentNullException(nameof(progress));
        byte[] line = Encoding.UTF8.GetBytes(progress.ToJson() + "\n");
        lock (_gate)
        {
            if (_file is null || _file.Length + line.Length > MaxFileBytes && _file.Length > 0) Roll();
            _file!.Write(line);
            _file.Flush();
        }
    }

    private void Roll()
    {
        _file?.Dispose();
        _number++;
        _file = new FileStream(Path.Combine(_directory, $"progress-{_number:D6}.jsonl"), FileMode.Append, FileAccess.Write, FileShare.Read);
        foreach (string old in Files().OrderByDescending(NumberOf).Skip(MaxFiles)) File.Delete(old);
    }

    private string[] Files() => Directory.GetFiles(_directory, "progress-*.jsonl");

    private static int NumberOf(string path) =>
        int.TryParse(Path.GetFileNameWithoutExtension(path).AsSpan("progress-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? n : 0;

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            _file?.Dispose();
            _file = null;
        }
    }
}

/// <summary>The one JSON layout of a <see cref="BatchProgress"/> (names in camelCase, durations in milliseconds, times in ISO 8601).</summary>
internal static class BatchProgressJson
{
    public static string Write(BatchProgress p)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("pipeline", p.PipelineId);
            w.WriteNumber("batch", p.BatchId);
            w.WriteString("plannedAt", p.PlannedAt);
            w.WriteNumber("durationMs", Math.Round(p.Duration.TotalMilliseconds, 3));
            w.WriteNumber("schedulingDelayMs", Math.Round(p.SchedulingDelay.TotalMilliseconds, 3));
            w.WriteNumber("inputRecords", p.InputRecords);
            w.WriteNumber("outputRecords", p.OutputRecords);
            w.WriteNumber("inputRecordsPerSecond", Math.Round(p.InputRecordsPerSecond, 1));
            w.WriteNumber("processedRecordsPerSecond", Math.Round(p.ProcessedRecordsPerSecond, 1));
            if (p.RateLimit is { } limit) w.WriteNumber("rateLimitRecordsPerSecond", Math.Round(limit, 1));
            w.WriteNumber("stateKeys", p.StateKeys);
            w.WriteBoolean("replayed", p.Replayed);
            w.WriteBoolean("snapshotWritten", p.SnapshotWritten);
            w.WriteNumber("deadLetters", p.DeadLetters);
            w.WriteNumber("lateRecords", p.LateRecords);
            w.WriteStartObject("phasesMs");
            foreach (var (phase, time) in p.Phases) w.WriteNumber(phase, Math.Round(time.TotalMilliseconds, 3));
            w.WriteEndObject();
            w.WriteStartArray("sources");
            foreach (var s in p.Sources)
            {
                w.WriteStartObject();
                w.WriteString("source", s.Source);
                w.WriteNumber("records", s.Records);
                w.WriteStartArray("partitions");
                foreach (var part in s.Partitions)
                {
                    w.WriteStartObject();
                    w.WriteString("partition", part.Partition);
                    w.WriteNumber("startPosition", part.StartPosition);
                    w.WriteNumber("endPosition", part.EndPosition);
                    if (part.AvailablePosition is long available) w.WriteNumber("availablePosition", available);
                    if (part.Lag is long lag) w.WriteNumber("lag", lag);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("sinks");
            foreach (var s in p.Sinks)
            {
                w.WriteStartObject();
                w.WriteString("sink", s.Sink);
                w.WriteNumber("records", s.Records);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("stateOperators");
            foreach (var s in p.StateOperators)
            {
                w.WriteStartObject();
                w.WriteString("operator", s.OperatorId);
                w.WriteNumber("keys", s.Keys);
                if (s.Updated is long updated) w.WriteNumber("updated", updated);
                if (s.SnapshotBytes is long snapshotBytes) w.WriteNumber("snapshotBytes", snapshotBytes);
                if (s.DeltaBytes is long deltaBytes) w.WriteNumber("deltaBytes", deltaBytes);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("watermarks");
            foreach (var m in p.Watermarks)
            {
                w.WriteStartObject();
                w.WriteString("operator", m.OperatorId);
                w.WriteNumber("watermarkMs", m.WatermarkMs);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }
}
