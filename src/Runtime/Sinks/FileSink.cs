using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sinks;

/// <summary>
/// Writes each batch to its own file <c>part-&lt;batch id&gt;.txt</c>, one formatted record per line, exactly
/// once: the file is written under a temporary name, fsynced and renamed, so it appears whole or not at all,
/// and a replayed batch replaces it with the same content rather than adding a second copy. Empty batches
/// write no file. Readers should ignore names starting with '.' (temporary files, removed on the next run).
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class FileSink<T> : ISinkConnector<T>
{
    private readonly string _directory;
    private readonly Func<T, string> _format;
    private bool _cleaned;

    /// <summary>Writes into <paramref name="directory"/> (created if missing), formatting each record with <paramref name="format"/>.</summary>
    public FileSink(string directory, Func<T, string> format)
    {
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("The output directory must be a non-empty path.", nameof(directory));
        _directory = Path.GetFullPath(directory);
        _format = format ?? throw new ArgumentNullException(nameof(format));
    }

    /// <summary>The file name of a batch's output.</summary>
    public static string FileNameOf(long batchId) => $"part-{batchId:D10}.txt";

    /// <inheritdoc />
    public async Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        if (!_cleaned)
        {
            // Writes that a crash interrupted leave hidden temporary files; the batch is written again anyway.
            if (Directory.Exists(_directory))
            {
                foreach (var file in Directory.EnumerateFiles(_directory, ".part-*"))
                {
                    if (Checkpointing.DurableFile.IsTemporary(Path.GetFileName(file))) Checkpointing.LocalDirectoryCheckpointStore.TryDelete(file);
                }
            }

            _cleaned = true;
        }

        if (records.Count == 0) return;
        Directory.CreateDirectory(_directory);
        var text = new StringBuilder(records.Count * 32);
        foreach (var record in records) text.Append(_format(record)).Append('\n');
        await Checkpointing.DurableFile.WriteAsync(Path.Combine(_directory, FileNameOf(batchId)), Encoding.UTF8.GetBytes(text.ToString()), cancellationToken, FileNameOf(batchId)).ConfigureAwait(false);
    }
}

/// <summary>Prints each batch to standard output; for trying pipelines out (not exactly-once).</summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class ConsoleSink<T> : ISinkConnector<T>
{
    private readonly Func<T, string> _format;
    private readonly TextWriter _out;

    /// <summary>Prints with <paramref name="format"/> (default <c>ToString()</c>).</summary>
    public ConsoleSink(Func<T, string>? format = null, TextWriter? output = null)
    {
        _format = format ?? (r => r?.ToString() ?? "null");
        _out = output ?? Console.Out;
    }

    /// <inheritdoc />
    public Task WriteBatchAsync(long batchId, IReadOnlyList<T> records, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        text.Append("-- batch ").Append(batchId).Append(": ").Append(records.Count).Append(" records\n");
        foreach (var record in records) text.Append(_format(record)).Append('\n');
        _out.Write(text.ToString());
        _out.Flush();
        return Task.CompletedTask;
    }
}
