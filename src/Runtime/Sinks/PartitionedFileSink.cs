using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;

namespace PipelineDsl.Sinks;

/// <summary>
/// Writes records into partition directories (Hive style, <c>dt=2015-07-15/hm=00%3A01/</c>), rolling to a new file
/// when a file would pass <see cref="MaxFileBytes"/>, exactly once: every file of batch N has a name fixed by the batch
/// (<c>part-&lt;batch&gt;-&lt;n&gt;.&lt;extension&gt;</c>), is written under a temporary name, fsynced and renamed, and a
/// replayed batch writes the same files with the same content. After a batch's files, its entry in the batch log
/// (<c>_batches/&lt;batch&gt;</c>) lists them: a reader that wants whole batches only reads the files the log lists
/// (as Spark's file sink readers use <c>_spark_metadata</c>); a file not yet listed belongs to a batch being written,
/// which its replay rewrites identically.
/// </summary>
/// <remarks>
/// Names starting with '.' (temporary files, removed when the sink next starts) or '_' (the batch log) are not data.
/// A partition is chosen per record by a function of the record alone, so that a replay, with the same records in the
/// same order, makes the same files. Records of one partition keep their order within a batch.
/// </remarks>
/// <typeparam name="T">The record type.</typeparam>
public sealed class PartitionedFileSink<T> : ISinkConnector<T>
{
    private readonly string _directory;
    private readonly Func<T, string> _partitionOf;
    private readonly Func<T, string> _format;
    private readonly string _extension;
    private readonly HashSet<string> _knownDirectories = new(StringComparer.Ordinal);
    private bool _cleaned;

    /// <param name="directory">The root directory (created if missing).</param>
    /// <param name="partitionOf">A record's partition: a relative path such as <see cref="PartitionedFileSink.PartitionPath"/> builds.</param>
    /// <param name="format">A record's line (without the line break).</param>
    /// <param name="extension">The data files' extension, without the dot.</param>
    public PartitionedFileSink(string directory, Func<T, string> partitionOf, Func<T, string> format, string extension = "csv")
    {
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("The output directory must be a non-empty path.", nameof(directory));
        if (string.IsNullOrEmpty(extension) || extension.IndexOfAny(new[] { '.', '/', '\\' }) >= 0)
            throw new ArgumentException($"The extension '{extension}' must be a non-empty name without '.', '/' or '\\' (for example 'csv').", nameof(extension));
        _directory = Path.GetFullPath(directory);
        _partitionOf = partitionOf ?? throw new ArgumentNullException(nameof(partitionOf));
        _format = format ?? throw new ArgumentNullException(nameof(format));
        _extension = extension;
    }

    /// <summary>A file's largest size in bytes before the next record starts a new file (default 128 MiB). A single longer record gets a file of its own.</summary>
    public long MaxFileBytes
    {
        get => _maxFileBytes;
        init => _maxFileBytes = value > 0 ? value : throw new ArgumentOutOfRangeException(nameof(MaxFileBytes), value, "PartitionedFileSink.MaxFileBytes must be positive.");
    }

    private readonly long _maxFileBytes = 128L << 20;

    /// <summary>The name of the <paramref name="index"/>th file of a batch in one partition.</summary>
    public string FileNameOf(long batchId, int index) => $"part-{batchId:D10}-{index:D5}.{_extension}";

    /// <inheritdoc />
    public async Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        if (!_cleaned)
        {
            // Writes a crash interrupted leave hidden temporary files; their batches are written again anyway.
            if (Directory.Exists(_directory))
            {
                foreach (var file in Directory.EnumerateFiles(_directory, ".*", SearchOption.AllDirectories))
                {
                    if (DurableFile.IsTemporary(Path.GetFileName(file))) LocalDirectoryCheckpointStore.TryDelete(file);
                }
            }

            _cleaned = true;
        }

        if (records.Count == 0) return;

        // Group by partition, in the order partitions first appear (a replay groups identically).
        var partitions = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < records.Count; i++)
        {
            var record = records[i];
            string partition = CheckPartition(_partitionOf(record), batchId, i);
            if (!partitions.TryGetValue(partition, out var lines))
            {
                partitions[partition] = lines = new List<string>();
                order.Add(partition);
            }

            string line = _format(record);
            if (line.Contains('\n')) throw new ArgumentException($"PartitionedFileSink: record {i} of batch {batchId} formats to a line containing a line break; format records as single lines.");
            lines.Add(line);
        }

        Directory.CreateDirectory(_directory);
        var written = new StringBuilder();
        foreach (var partition in order)
        {
            string folder = Path.Combine(_directory, partition.Replace('/', Path.DirectorySeparatorChar));
            EnsureDirectory(folder);
            int index = 0;
            var content = new StringBuilder();
            long bytes = 0;
            async Task FlushAsync()
            {
                string name = FileNameOf(batchId, index++);
                byte[] data = Encoding.UTF8.GetBytes(content.ToString());
                await DurableFile.WriteAsync(Path.Combine(folder, name), data, cancellationToken, name).ConfigureAwait(false);
                written.Append(partition).Append('/').Append(name).Append('\t').Append(data.Length.ToString(CultureInfo.InvariantCulture)).Append('\n');
                content.Clear();
                bytes = 0;
            }

            foreach (var line in partitions[partition])
            {
                long size = Encoding.UTF8.GetByteCount(line) + 1;
                if (bytes > 0 && bytes + size > MaxFileBytes) await FlushAsync().ConfigureAwait(false);
                content.Append(line).Append('\n');
                bytes += size;
            }

            await FlushAsync().ConfigureAwait(false);
        }

        // The batch log entry last: once it exists, every file it lists is durable.
        string log = Path.Combine(_directory, PartitionedFileSink.BatchLogFolder);
        EnsureDirectory(log);
        await DurableFile.WriteAsync(Path.Combine(log, $"{batchId:D10}"), Encoding.UTF8.GetBytes(written.ToString()), cancellationToken, "batch-log").ConfigureAwait(false);
    }

    private static string CheckPartition(string? partition, long batchId, int index)
    {
        string? problem = partition switch
        {
            null or "" => "is empty",
            _ when Path.IsPathRooted(partition) || partition.StartsWith('/') => "is not a relative path",
            _ when partition.Contains('\\') => "contains '\\' (separate directories with '/')",
            _ => partition.Split('/').Select(segment => segment switch
            {
                "" => "has an empty directory name",
                "." or ".." => "contains '.' or '..'",
                _ when segment.StartsWith('.') || segment.StartsWith('_') => $"has a directory '{segment}' starting with '.' or '_', which are the sink's own",
                _ => null,
            }).FirstOrDefault(p => p is not null),
        };
        return problem is null
            ? partition!
            : throw new ArgumentException($"PartitionedFileSink: the partition '{partition}' of record {index} of batch {batchId} {problem}. Build partitions with PartitionedFileSink.PartitionPath.");
    }

    /// <summary>Creates a directory and makes its entry durable (fsync of the directories it was created in).</summary>
    private void EnsureDirectory(string folder)
    {
        if (!_knownDirectories.Add(folder)) return;
        var missing = new List<string>();
        for (string? d = folder; d is not null && !Directory.Exists(d); d = Path.GetDirectoryName(d)) missing.Add(d);
        if (missing.Count == 0) return;
        Directory.CreateDirectory(folder);
        foreach (var created in missing) DurableFile.FsyncDirectory(Path.GetDirectoryName(created)!);
    }
}

/// <summary>Partition paths and the batch log of <see cref="PartitionedFileSink{T}"/>.</summary>
public static class PartitionedFileSink
{
    /// <summary>The folder of the batch log, under the sink's directory.</summary>
    public const string BatchLogFolder = "_batches";

    /// <summary>
    /// A partition path from (column, value) pairs, Hive style: <c>column=value</c> segments joined by '/', with the
    /// characters that are unsafe in a file name on some system (<c>"#%'*/:=?\{[]^</c>, control characters) escaped as
    /// <c>%XX</c>, as Hive and Spark escape them; <see cref="UnescapePartitionValue"/> reverses it.
    /// </summary>
    public static string PartitionPath(params (string Column, string Value)[] columns)
    {
        if (columns is null || columns.Length == 0) throw new ArgumentException("A partition path needs at least one column.", nameof(columns));
        return string.Join("/", columns.Select(c =>
        {
            if (string.IsNullOrEmpty(c.Column)) throw new ArgumentException("A partition column needs a name.", nameof(columns));
            return Escape(c.Column) + "=" + (c.Value is null or "" ? "__DEFAULT_PARTITION__" : Escape(c.Value));
        }));
    }

    /// <summary>The value of a partition segment as written by <see cref="PartitionPath"/> (the part after '=', unescaped).</summary>
    public static string UnescapePartitionValue(string escaped) => Uri.UnescapeDataString(escaped);

    private static string Escape(string value)
    {
        var text = new StringBuilder(value.Length);
        foreach (char c in value)
        {
            if (c < ' ' || c == 0x7F || "\"#%'*/:=?\\{[]^".IndexOf(c) >= 0) text.Append('%').Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            else text.Append(c);
        }

        return text.ToString();
    }

    /// <summary>
    /// The files of every batch in the log, in batch order, as paths relative to <paramref name="directory"/>: what a
    /// reader that wants whole batches reads.
    /// </summary>
    public static IReadOnlyList<string> CommittedFiles(string directory)
    {
        string log = Path.Combine(directory, BatchLogFolder);
        if (!Directory.Exists(log)) return Array.Empty<string>();
        return Directory.GetFiles(log).Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal)
            .SelectMany(File.ReadAllLines).Where(l => l.Length > 0).Select(l => l[..l.IndexOf('\t')]).ToList();
    }
}
