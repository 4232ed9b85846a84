using PipelineDsl.Checkpointing;
using PipelineDsl.Serialization;

namespace PipelineDsl.Runtime.Tests;

/// <summary>What the checkpoint tests do to checkpoint files: copy a checkpoint, seal an edited body again, edit a map body, make a FIFO.</summary>
internal static class CheckpointTestFiles
{
    /// <summary>Copies a checkpoint directory, without its lock files and hidden spares.</summary>
    public static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var directory in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, directory)));
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string name = Path.GetFileName(file);
            if (name is "lock" or "lock.owner" || name.StartsWith('.')) continue;
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }

    /// <summary>
    /// Rewrites a file's body and seals it again with a valid checksum: the file's own identity and batch, or the
    /// ones given (what a buggy writer, a restored backup or a copied file looks like).
    /// </summary>
    public static void Reseal(string path, string kind, Func<byte[], byte[]> edit, string? checkpointId = null, long? batch = null)
    {
        var envelope = CheckpointFile.Open(File.ReadAllBytes(path), kind, path);
        byte[] body = edit(envelope.Body.ToArray());
        File.WriteAllBytes(path, CheckpointFile.Wrap(kind, envelope.PipelineId, checkpointId ?? envelope.CheckpointId!, batch ?? envelope.Batch!.Value, body));
    }

    /// <summary>The entries of a body that is a MessagePack map with string keys, each value as its raw bytes.</summary>
    public static List<(string Key, byte[] Value)> MapEntries(byte[] body)
    {
        var entries = new List<(string, byte[])>();
        var r = new MessagePackReader(body);
        if (r.NextType != MessagePackType.Map) return entries;
        int count = r.ReadMapHeader();
        for (int i = 0; i < count; i++) entries.Add((r.ReadString() ?? "", r.ReadRaw().ToArray()));
        return entries;
    }

    /// <summary>A MessagePack map of the given entries.</summary>
    public static byte[] Map(IReadOnlyList<(string Key, byte[] Value)> entries)
    {
        var w = new MessagePackWriter(256);
        w.WriteMapHeader(entries.Count);
        foreach (var (key, value) in entries)
        {
            w.Write(key);
            w.WriteRaw(value);
        }

        return w.ToArray();
    }

    /// <summary>A named pipe (mkfifo(3)) at <paramref name="path"/>: a "file" whose read blocks until someone writes.</summary>
    public static void MakeFifo(string path)
    {
        Assert.True(OperatingSystem.IsLinux(), "FIFOs are made with mkfifo(3) here");
        Assert.Equal(0, mkfifo(path, 0b110_110_110));
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int mkfifo(string path, int mode);
}
