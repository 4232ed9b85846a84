using System;
using System.Buffers;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace PipelineDsl.Sources;

/// <summary>
/// Reads text files from a directory. Each file is a partition (files appear in the directory, ideally
/// atomically by rename, and may grow by appending); a position is the byte offset of a line. Only lines
/// ended by '\n' are read: a half-written last line waits until it is complete. Each line is decoded by
/// the parse function; a line it throws on is a bad record with its file and byte offset.
/// </summary>
/// <typeparam name="T">The record type.</typeparam>
public sealed class FileDirectorySource<T> : ISourceConnector<T>, IPartialRecordSource
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly string _directory;
    private readonly Func<string, T> _parse;
    private readonly FileDirectorySourceOptions _options;
    private readonly HashSet<string> _skipped = new(StringComparer.Ordinal);

    // The first bytes of each file as this process first read them: a file rewritten while the job runs (same
    // name, other content) is detected even when it is not shorter than what was read.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte[]> _heads = new(StringComparer.Ordinal);
    private const int HeadBytes = 64;

    /// <summary>Reads <paramref name="directory"/>, decoding each line with <paramref name="parse"/>.</summary>
    public FileDirectorySource(string directory, Func<string, T> parse, FileDirectorySourceOptions? options = null)
    {
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("The input directory must be a non-empty path.", nameof(directory));
        _directory = Path.GetFullPath(directory);
        _parse = parse ?? throw new ArgumentNullException(nameof(parse));
        _options = options ?? new FileDirectorySourceOptions();
        _options.Validate();
    }

    /// <inheritdoc />
    public string Description => $"files '{Path.Combine(_directory, _options.SearchPattern)}'";

    /// <inheritdoc />
    public Task<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(_directory))
            throw new DirectoryNotFoundException($"The input directory '{_directory}' does not exist. Create it, or point the source at the directory that holds the input files.");
        var files = new List<string>();
        foreach (var path in Directory.EnumerateFiles(_directory, _options.SearchPattern))
        {
            string name = Path.GetFileName(path);
            if (name.StartsWith('.')) continue;
            if (!PipelineDsl.IO.FileKind.IsRegularFile(path))
            {
                // A FIFO, socket or device: reading it would block or never end. Said once per name.
                bool first;
                lock (_skipped) first = _skipped.Add(name);
                if (first) _options.OnWarning?.Invoke($"The input directory '{_directory}' holds '{name}', which is not a regular file (a FIFO, socket or device): it is skipped.");
                continue;
            }

            files.Add(name);
        }

        files.Sort(StringComparer.Ordinal);
        return Task.FromResult<IReadOnlyList<string>>(files);
    }

    /// <inheritdoc />
    public async Task<long> GetInitialPositionAsync(string partition, bool partitionIsNew, CancellationToken cancellationToken) =>
        _options.StartingPosition == StartingPosition.Earliest || partitionIsNew ? 0 : await GetEndPositionAsync(partition, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public Task<long> GetEndPositionAsync(string partition, CancellationToken cancellationToken)
    {
        using var file = Open(partition);
        long length = file.Length;
        if (length == 0) return Task.FromResult(0L);
        // The end is just past the last '\n': scan back from the end of the file.
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long end = length;
            while (end > 0)
            {
                int chunk = (int)Math.Min(buffer.Length, end);
                file.Position = end - chunk;
                file.ReadExactly(buffer, 0, chunk);
                int newline = Array.LastIndexOf(buffer, (byte)'\n', chunk - 1, chunk);
                if (newline >= 0) return Task.FromResult(end - chunk + newline + 1);
                end -= chunk;
            }

            return Task.FromResult(0L);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc />
    /// <remarks>A file's last line without its terminating '\n' is not read until the newline is written.</remarks>
    public Task<long> GetIncompleteTailAsync(string partition, long position, CancellationToken cancellationToken)
    {
        string path = Path.Combine(_directory, partition);
        if (!File.Exists(path)) return Task.FromResult(0L);
        using var file = Open(partition);
        return Task.FromResult(Math.Max(0, file.Length - position));
    }

    /// <inheritdoc />
    public Task<long> AdvanceAsync(string partition, long from, long available, long maxRecords, CancellationToken cancellationToken)
    {
        if (maxRecords == long.MaxValue || from >= available) return Task.FromResult(available);
        using var file = Open(partition);
        file.Position = from;
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long position = from;
            long lines = 0;
            while (position < available)
            {
                int read = file.Read(buffer, 0, (int)Math.Min(buffer.Length, available - position));
                if (read == 0) break;
                int start = 0;
                while (true)
                {
                    int newline = Array.IndexOf(buffer, (byte)'\n', start, read - start);
                    if (newline < 0) break;
                    if (++lines == maxRecords) return Task.FromResult(position + newline + 1);
                    start = newline + 1;
                }

                position += read;
            }

            return Task.FromResult(available);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <inheritdoc />
    public async Task ReadAsync(string partition, long from, long to, ISourceOutput<T> output, CancellationToken cancellationToken)
    {
        if (to <= from) return;
        using var file = Open(partition);
        string path = Path.Combine(_directory, partition);
        if (file.Length < to)
            throw new InvalidDataException($"The input file '{path}' is {file.Length} bytes but the checkpoint recorded data up to byte {to}: input files must only grow. Restore the file, or start a new checkpoint.");
        await CheckUnchangedAsync(file, partition, path, from, cancellationToken).ConfigureAwait(false);
        file.Position = from;
        var bytes = new byte[to - from];
        await file.ReadExactlyAsync(bytes, cancellationToken).ConfigureAwait(false);
        int start = 0;
        while (start < bytes.Length)
        {
            int newline = Array.IndexOf(bytes, (byte)'\n', start);
            if (newline < 0) newline = bytes.Length; // cannot happen: ranges end after a '\n'
            int length = newline - start;
            if (length > 0 && bytes[newline - 1] == '\r') length--;
            long position = from + start;
            string line;
            try
            {
                line = Utf8.GetString(bytes, start, length);
            }
            catch (DecoderFallbackException e)
            {
                output.Reject(position, Convert.ToHexString(bytes, start, Math.Min(length, 100)), new InvalidDataException("The line is not valid UTF-8.", e));
                start = newline + 1;
                continue;
            }

            if (line.Length > 0 || !_options.SkipEmptyLines)
            {
                T record;
                bool ok;
                try
                {
                    record = _parse(line);
                    ok = true;
                }
                catch (Exception e) when (e is FormatException or ArgumentException or InvalidDataException or IndexOutOfRangeException or OverflowException or InvalidOperationException)
                {
                    output.Reject(position, line, e);
                    record = default!;
                    ok = false;
                }

                if (ok) output.Emit(position, record);
            }

            start = newline + 1;
        }
    }

    /// <summary>
    /// Positions are line starts, so the byte before a range is a newline; and the head of a file does not change.
    /// Either failing means the file was rewritten or replaced after the pipeline read it: reading on would skip
    /// or repeat records without a word.
    /// </summary>
    private async Task CheckUnchangedAsync(FileStream file, string partition, string path, long from, CancellationToken ct)
    {
        int headLength = (int)Math.Min(HeadBytes, file.Length);
        var head = new byte[headLength];
        file.Position = 0;
        await file.ReadExactlyAsync(head, ct).ConfigureAwait(false);
        if (from > 0)
        {
            var before = new byte[1];
            file.Position = from - 1;
            await file.ReadExactlyAsync(before, ct).ConfigureAwait(false);
            if (before[0] != (byte)'\n')
                throw new InvalidDataException(
                    $"The input file '{path}' was rewritten: position {from}, where the checkpoint says the next record starts, is not the start of a line. "
                    + "Input files must only grow (append, or write a new file and rename it in). Restore the file, or start a new checkpoint.");
        }

        var seen = _heads.GetOrAdd(partition, head);
        int common = Math.Min(seen.Length, head.Length);
        if (!seen.AsSpan(0, common).SequenceEqual(head.AsSpan(0, common)))
            throw new InvalidDataException(
                $"The input file '{path}' was rewritten while the pipeline ran: its first bytes differ from what was read before. "
                + "Input files must only grow (append, or write a new file and rename it in). Restore the file, or start a new checkpoint.");
        if (head.Length > seen.Length) _heads[partition] = head;
    }

    private FileStream Open(string partition)
    {
        // A partition is a file name of this directory, nothing else: a name from a (damaged or foreign)
        // checkpoint must not open a file elsewhere.
        if (partition.Length == 0 || partition is "." or ".." || partition.IndexOfAny(new[] { '/', '\\', '\0' }) >= 0 || Path.IsPathRooted(partition))
            throw new InvalidDataException($"'{partition}' is not the name of a file in the input directory '{_directory}': a checkpoint named it, so it is damaged or foreign. Restore it from a backup, or start a new checkpoint.");
        string path = Path.Combine(_directory, partition);
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
        }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException($"The input file '{path}' disappeared. Input files must stay until the pipeline has read them; restore it, or start a new checkpoint.", path, e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new UnauthorizedAccessException($"The input file '{path}' cannot be read: {e.Message} Fix its permissions.", e);
        }
    }
}

/// <summary>Options of a <see cref="FileDirectorySource{T}"/>.</summary>
public sealed class FileDirectorySourceOptions
{
    /// <summary>Which files are input (default <c>*</c>; files whose name starts with '.' are always ignored, so write to a dot-file and rename).</summary>
    public string SearchPattern { get; set; } = "*";

    /// <summary>Where a new checkpoint starts (default <see cref="StartingPosition.Earliest"/>).</summary>
    public StartingPosition StartingPosition { get; set; } = StartingPosition.Earliest;

    /// <summary>Whether empty lines are skipped rather than parsed (default true).</summary>
    public bool SkipEmptyLines { get; set; } = true;

    /// <summary>Called with a message when the source skips something (a file that is not a regular file); null to ignore.</summary>
    public Action<string>? OnWarning { get; set; }

    internal void Validate()
    {
        if (string.IsNullOrWhiteSpace(SearchPattern)) throw new ArgumentException("FileDirectorySourceOptions.SearchPattern must be a non-empty pattern such as \"*.csv\".");
    }
}
