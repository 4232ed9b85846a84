using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using PipelineDsl.Checkpointing;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>One immutable file of an operator's incremental snapshot, stored once under <c>shared/</c> and used by every snapshot that lists it.</summary>
/// <param name="LocalName">Its name in the operator's database directory (for example <c>000042.sst</c>).</param>
/// <param name="SharedName">Its name in the checkpoint store (<c>shared/…</c>), unique to the database instance that wrote it.</param>
/// <param name="Size">Its length in bytes.</param>
/// <param name="Crc">Its CRC-32C: a downloaded file that does not match is not used.</param>
internal sealed record SharedStateFile(string LocalName, string SharedName, long Size, uint Crc);

/// <summary>A file to put into the checkpoint store before the snapshot that lists it is written.</summary>
internal sealed record SharedStateUpload(SharedStateFile File, string LocalPath);

/// <summary>
/// The snapshot part of an operator whose state is a database of immutable files (format <see cref="Format"/>): the
/// files it consists of, each in the checkpoint store under <c>shared/</c>, and the small mutable files (the
/// database's manifest and options) inline. The one owner of this layout: the RocksDB backend writes and reads it,
/// the checkpoint coordinator reads it to know which shared files are still used.
/// </summary>
/// <remarks>
/// Layout: a map of <c>count</c> (keys held), <c>files</c> (an array of <c>[localName, sharedName, size, crc]</c>)
/// and <c>inline</c> (an array of <c>[name, bytes]</c>). Unknown fields are skipped.
/// </remarks>
internal sealed record SharedStateFileSet(long Count, IReadOnlyList<SharedStateFile> Files, IReadOnlyList<(string Name, byte[] Content)> Inline)
{
    /// <summary>
    /// The state format number of a snapshot part of this layout. Numbers from 100 up are state backends' own layouts,
    /// apart from every executor's entry formats (1, 2, ...), so that a reader tells a file list from entries by the
    /// number alone, whatever the operator's kind; an older build refuses it as a newer format.
    /// </summary>
    public const int Format = 100;

    /// <summary>
    /// Why an operator whose own entries have <paramref name="entryFormat"/>, and whose state is in an external store
    /// when <paramref name="external"/>, cannot read state stored in <paramref name="storedFormat"/>; null when it can.
    /// </summary>
    public static string? FormatProblem(string operatorId, int entryFormat, bool external, long? storedFormat, string file)
    {
        if (storedFormat == Format && !external)
        {
            return $"operator '{operatorId}': '{file}' holds its state as the files of the RocksDB state backend (format {Format}); this run keeps state in memory. "
                + "Run it with the RocksDB backend (PipelineRunnerOptions.StateBackend = new RocksDbStateBackend(directory)), as the run that wrote the checkpoint.";
        }

        return storedFormat is long stored && stored > entryFormat && stored != Format
            ? $"operator '{operatorId}': '{file}' holds its state in format {stored}, written by a newer build; this build reads formats up to {entryFormat} (in memory) and {Format} (RocksDB). Run a build at least as new as the one that wrote the checkpoint."
            : null;
    }

    public void Write(MessagePackWriter w)
    {
        w.WriteMapHeader(3);
        w.Write("count");
        w.Write(Count);
        w.Write("files");
        w.WriteArrayHeader(Files.Count);
        foreach (var f in Files)
        {
            w.WriteArrayHeader(4);
            w.Write(f.LocalName);
            w.Write(f.SharedName);
            w.Write(f.Size);
            w.Write((long)f.Crc);
        }

        w.Write("inline");
        w.WriteArrayHeader(Inline.Count);
        foreach (var (name, content) in Inline)
        {
            w.WriteArrayHeader(2);
            w.Write(name);
            w.WriteBinary(content);
        }
    }

    /// <summary>Decodes a part; throws <see cref="CheckpointCorruptException"/> naming <paramref name="where"/> when it is not of this layout.</summary>
    public static SharedStateFileSet Read(ReadOnlySpan<byte> part, string where)
    {
        try
        {
            var r = new MessagePackReader(part);
            long count = -1;
            List<SharedStateFile>? files = null;
            List<(string, byte[])>? inline = null;
            int fields = r.ReadMapHeader();
            for (int i = 0; i < fields; i++)
            {
                switch (r.ReadString())
                {
                    case "count":
                        count = r.ReadInt64();
                        break;
                    case "files":
                        int n = r.ReadArrayHeader();
                        files = new List<SharedStateFile>(n);
                        for (int f = 0; f < n; f++)
                        {
                            if (r.ReadArrayHeader() != 4) throw new MessagePackException("a file entry is not [localName, sharedName, size, crc]");
                            string local = r.ReadString() ?? "";
                            string shared = r.ReadString() ?? "";
                            long size = r.ReadInt64();
                            uint crc = checked((uint)r.ReadInt64());
                            files.Add(new SharedStateFile(CheckLocalName(local, where), CheckSharedName(shared, where), size, crc));
                        }

                        break;
                    case "inline":
                        int m = r.ReadArrayHeader();
                        inline = new List<(string, byte[])>(m);
                        for (int f = 0; f < m; f++)
                        {
                            if (r.ReadArrayHeader() != 2) throw new MessagePackException("an inline file is not [name, bytes]");
                            string name = CheckLocalName(r.ReadString() ?? "", where);
                            inline.Add((name, r.ReadBinary() ?? Array.Empty<byte>()));
                        }

                        break;
                    default:
                        r.Skip();
                        break;
                }
            }

            if (count < 0 || files is null || inline is null) throw new MessagePackException("count, files or inline is missing");
            return new SharedStateFileSet(count, files, inline);
        }
        catch (Exception e) when (e is MessagePackException or OverflowException)
        {
            throw new CheckpointCorruptException($"{where}: its list of state files does not decode ({e.Message}); it is not used.", e);
        }
    }

    // A name from a checkpoint becomes a path on this machine: nothing but a plain file name is accepted.
    private static string CheckLocalName(string name, string where) =>
        name.Length > 0 && name.Length < 256 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_')
            ? name
            : throw new CheckpointCorruptException($"{where}: it lists a state file named '{name}', which is not a plain file name; it is not used.");

    private static string CheckSharedName(string name, string where) =>
        name.StartsWith(SharedStateFiles.Folder + "/", StringComparison.Ordinal) && CheckLocalName(name[(SharedStateFiles.Folder.Length + 1)..], where) is not null
            ? name
            : throw new CheckpointCorruptException($"{where}: it lists a shared state file named '{name}', outside '{SharedStateFiles.Folder}/'; it is not used.");
}

/// <summary>
/// The checkpoint store's <c>shared/</c> folder: the immutable files of incremental snapshots, each uploaded once and
/// listed by every snapshot that uses it. A file is deleted when no retained snapshot lists it any more
/// (<see cref="CollectGarbageAsync"/>: a mark and sweep over the retained snapshots, which is the reference count
/// Flink keeps, recomputed from the files themselves so that a crash can never leave it wrong).
/// </summary>
internal sealed class SharedStateFiles
{
    public const string Folder = "shared";

    private readonly ICheckpointStore _store;

    public SharedStateFiles(ICheckpointStore store) => _store = store;

    public string Location => _store.Location;

    /// <summary>The name under which a database instance's file is stored: unique to the instance, so that two instances never write one name with different bytes.</summary>
    public static string NameFor(string operatorId, string instance, string localName)
    {
        var op = new string(operatorId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_').ToArray());
        return $"{Folder}/{op}.{instance}.{localName}";
    }

    /// <summary>Puts each file into the store, durably, after checking it still has the length and checksum its snapshot lists.</summary>
    public async Task UploadAsync(IReadOnlyList<SharedStateUpload> uploads, CancellationToken ct)
    {
        foreach (var upload in uploads)
        {
            var bytes = await File.ReadAllBytesAsync(upload.LocalPath, ct).ConfigureAwait(false);
            if (bytes.Length != upload.File.Size || CheckpointFile.Crc32C(bytes) != upload.File.Crc)
                throw new IOException($"State file '{upload.LocalPath}' changed after its snapshot listed it; the snapshot is not written.");
            await _store.WriteAsync(upload.File.SharedName, bytes, durable: true, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Reads a shared file and writes it to <paramref name="path"/> (through a temporary file and a rename); throws
    /// <see cref="CheckpointCorruptException"/> when it is missing or does not match its listing.
    /// </summary>
    public async Task DownloadAsync(SharedStateFile file, string path, string snapshotName, CancellationToken ct)
    {
        var bytes = await _store.ReadAsync(file.SharedName, ct).ConfigureAwait(false)
            ?? throw new CheckpointCorruptException($"Checkpoint file '{snapshotName}' lists state file '{file.SharedName}', which is missing from '{_store.Location}': the snapshot is not used.");
        if (bytes.Length != file.Size || CheckpointFile.Crc32C(bytes) != file.Crc)
            throw new CheckpointCorruptException($"State file '{file.SharedName}' in '{_store.Location}' does not match its listing in '{snapshotName}' (length or checksum): it was changed or damaged, and the snapshot is not used.");
        string temp = path + ".download";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.None))
        {
            await stream.WriteAsync(bytes, ct).ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>The shared files listed by the operators of a snapshot body (parts of format <see cref="SharedStateFileSet.Format"/>).</summary>
    public static IEnumerable<string> ListedBy(SnapshotBody body, string name)
    {
        foreach (var (_, part) in body.Operators ?? new Dictionary<string, SnapshotOperator>())
        {
            if (part.Format != SharedStateFileSet.Format) continue;
            foreach (var file in SharedStateFileSet.Read(part.Entries.Span, $"Checkpoint file '{name}'").Files) yield return file.SharedName;
        }
    }

    /// <summary>Deletes every shared file that no snapshot in <paramref name="listed"/> lists.</summary>
    public async Task<int> CollectGarbageAsync(IReadOnlySet<string> listed, CancellationToken ct)
    {
        int deleted = 0;
        foreach (var name in await _store.ListAsync(Folder, ct).ConfigureAwait(false))
        {
            if (listed.Contains(name)) continue;
            await _store.DeleteAsync(name, ct).ConfigureAwait(false);
            deleted++;
        }

        return deleted;
    }
}
