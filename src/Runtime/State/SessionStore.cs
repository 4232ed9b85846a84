using System.Collections.Generic;
using System.Linq;
using System.Runtime.InteropServices;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>One open session of a key: [Start, End) and its accumulated value.</summary>
internal struct Session<T>
{
    public long Start;
    public long End;
    public T Value;
}

/// <summary>
/// Session window state: each key's open sessions (sorted by start), the keys by their earliest session end
/// (the order sessions fire in), the keys each batch changed (so a batch's delta costs what it changed), and the
/// one layout of that state in snapshots and deltas.
/// </summary>
/// <remarks>
/// Layout (a session window's format 2): a snapshot is <c>[[key, [[start, end, value], ...]], ...]</c>; a delta
/// is <c>{0: [[key, [[start, end, value], ...]], ...]}</c> with every session of each changed key, none when the
/// key is gone. Format 1 wrote the whole state as each delta; <see cref="IsWholeState"/> tells it apart.
/// </remarks>
internal sealed class SessionStore<TKey, T> : ISessionStore<TKey, T> where TKey : notnull
{
    private readonly string _operatorId;
    private readonly IMessagePackFormatter<TKey> _keyFormatter;
    private readonly IMessagePackFormatter<T> _valueFormatter;
    private readonly Dictionary<TKey, List<Session<T>>> _sessions = new();
    private readonly PriorityQueue<TKey, long> _byEnd = new();
    private readonly HashSet<TKey> _changed = new();

    public SessionStore(string operatorId, IMessagePackFormatter<TKey> keyFormatter, IMessagePackFormatter<T> valueFormatter)
    {
        _operatorId = operatorId;
        _keyFormatter = keyFormatter;
        _valueFormatter = valueFormatter;
    }

    public long KeyCount => _sessions.Count;

    /// <summary>Format 2: the heap's layout (see the remarks).</summary>
    public const int Format = 2;

    public int SnapshotFormat => Format;

    /// <summary>Nothing to do: the batch's changes are in the dictionary already.</summary>
    public void EndBatch()
    {
    }

    public IReadOnlyList<SharedStateUpload> WriteSnapshot(MessagePackWriter writer, long batchId)
    {
        WriteSnapshot(writer);
        return System.Array.Empty<SharedStateUpload>();
    }

    public void RestoreSnapshot(System.ReadOnlyMemory<byte> part, long? format, SharedStateFiles? files)
    {
        if (format == SharedStateFileSet.Format)
            throw new System.InvalidOperationException($"The snapshot of session window '{_operatorId}' lists the files of the RocksDB state backend; this run keeps state in memory.");
        var reader = new MessagePackReader(part.Span);
        RestoreSnapshot(ref reader);
    }

    public void Dispose()
    {
    }

    /// <summary>Keys whose sessions the current batch changed.</summary>
    public long ChangedCount => _changed.Count;

    /// <summary>Starts a batch: forgets what the previous batch changed.</summary>
    public void BeginBatch() => _changed.Clear();

    /// <summary>The key's sessions, created empty when it has none; the caller keeps them sorted by start.</summary>
    public List<Session<T>> SessionsOf(TKey key)
    {
        ref var list = ref CollectionsMarshal.GetValueRefOrAddDefault(_sessions, key, out _);
        return list ??= new List<Session<T>>(1);
    }

    /// <summary>The key's sessions changed in this batch: its delta entry is written.</summary>
    public void Changed(TKey key) => _changed.Add(key);

    /// <summary>The key's new session ends at <paramref name="end"/>: it is due to fire then.</summary>
    public void DueAt(TKey key, long end) => _byEnd.Enqueue(key, end);

    /// <summary>Takes the next key due to fire at or before <paramref name="watermark"/> (long.MaxValue: any), with its sessions.</summary>
    public bool TryTakeDue(long watermark, out TKey key, out List<Session<T>>? sessions)
    {
        sessions = null;
        while (_byEnd.TryPeek(out key!, out long end) && (watermark == long.MaxValue || end <= watermark))
        {
            _byEnd.Dequeue();
            if (_sessions.TryGetValue(key, out sessions)) return true;
        }

        return false;
    }

    /// <summary>After firing: drops a key whose sessions all fired, or queues it again at its earliest remaining end.</summary>
    public void Settle(TKey key, List<Session<T>> sessions, List<(TKey, long)> requeue)
    {
        if (sessions.Count == 0) _sessions.Remove(key);
        else requeue.Add((key, sessions.Min(s => s.End)));
    }

    public void Requeue(List<(TKey Key, long End)> requeue)
    {
        foreach (var (key, end) in requeue) _byEnd.Enqueue(key, end);
    }

    public void Clear()
    {
        _sessions.Clear();
        _byEnd.Clear();
        _changed.Clear();
    }

    public void WriteSnapshot(MessagePackWriter writer)
    {
        writer.WriteArrayHeader(_sessions.Count);
        foreach (var (key, list) in _sessions) WriteEntry(writer, key, list);
    }

    /// <summary>Every changed key with all its sessions (none: the key is gone).</summary>
    public void WriteDelta(MessagePackWriter writer)
    {
        writer.WriteMapHeader(1);
        writer.Write(0L);
        writer.WriteArrayHeader(_changed.Count);
        foreach (var key in _changed) WriteEntry(writer, key, _sessions.TryGetValue(key, out var list) ? list : null);
    }

    private void WriteEntry(MessagePackWriter writer, TKey key, List<Session<T>>? list)
    {
        writer.WriteArrayHeader(2);
        _keyFormatter.Serialize(writer, key);
        writer.WriteArrayHeader(list?.Count ?? 0);
        if (list is null) return;
        foreach (var s in list)
        {
            writer.WriteArrayHeader(3);
            writer.Write(s.Start);
            writer.Write(s.End);
            _valueFormatter.Serialize(writer, s.Value);
        }
    }

    /// <summary>True when a delta holds the whole state (format 1, an array) rather than the changed keys (a map).</summary>
    public static bool IsWholeState(ref MessagePackReader reader) => reader.NextType != MessagePackType.Map;

    /// <summary>Replaces all state with a snapshot's (or a format 1 delta's).</summary>
    public void RestoreSnapshot(ref MessagePackReader reader)
    {
        Clear();
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            var (key, list) = ReadEntry(ref reader);
            if (key is null || list.Count == 0 || !_sessions.TryAdd(key, list)) throw new MessagePackException($"The state of operator '{_operatorId}' holds a null, empty or repeated key.");
            _byEnd.Enqueue(key, list.Min(x => x.End));
        }
    }

    /// <summary>Applies a delta of changed keys (a recovery), or of format 1: the whole state.</summary>
    public void ApplyDelta(ref MessagePackReader reader)
    {
        if (IsWholeState(ref reader))
        {
            RestoreSnapshot(ref reader); // format 1: builds before incremental deltas wrote the whole state
            return;
        }

        if (reader.ReadMapHeader() != 1 || reader.ReadInt64() != 0) throw new MessagePackException($"The delta of session window '{_operatorId}' is not a {{0: changed keys}} map.");
        int count = reader.ReadArrayHeader();
        for (int i = 0; i < count; i++)
        {
            var (key, list) = ReadEntry(ref reader);
            if (key is null) throw new MessagePackException($"The state of operator '{_operatorId}' holds a null key.");
            if (list.Count == 0) _sessions.Remove(key);
            else _sessions[key] = list;
        }

        // One queue entry per key, as after a snapshot (deltas are applied only while recovering).
        _byEnd.Clear();
        foreach (var (key, list) in _sessions) _byEnd.Enqueue(key, list.Min(x => x.End));
    }

    private (TKey Key, List<Session<T>> Sessions) ReadEntry(ref MessagePackReader reader)
    {
        if (reader.ReadArrayHeader() != 2) throw new MessagePackException($"A session entry of operator '{_operatorId}' is not a [key, sessions] pair.");
        TKey key = _keyFormatter.Deserialize(ref reader);
        int n = reader.ReadArrayHeader();
        var list = new List<Session<T>>(n);
        for (int s = 0; s < n; s++)
        {
            if (reader.ReadArrayHeader() != 3) throw new MessagePackException($"A session of operator '{_operatorId}' is not a [start, end, value] triple.");
            list.Add(new Session<T> { Start = reader.ReadInt64(), End = reader.ReadInt64(), Value = _valueFormatter.Deserialize(ref reader) });
        }

        return (key, list);
    }
}

/// <summary>Reads the sessions' layout for <c>dump-state</c>: one line per key with its open sessions.</summary>
internal static class SessionLayout
{
    public static void Dump(ref MessagePackReader r, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines) =>
        KeyedListLayout.Dump(ref r, "sessions", new[] { "start", "end" }, fieldNames, lines);
}
