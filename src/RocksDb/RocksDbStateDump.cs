using System;
using System.Collections.Generic;
using System.IO;
using PipelineDsl.Graph;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// Reads an operator's RocksDB snapshot (a <see cref="SharedStateFileSet"/>) for <c>pipelinedsl dump-state</c>: the
/// files are fetched into a temporary directory (verified as for a restore), the database is opened read-only, and its
/// entries are written as the heap layout's dumper of the operator's kind writes them. The layout of the entries belongs
/// to the store that writes them: <see cref="RocksDbKeyedLayout"/>, <see cref="RocksDbJoinLayout"/>, <see cref="RocksDbSessionLayout"/>,
/// <see cref="RocksDbPaneLayout"/>.
/// </summary>
internal static class RocksDbStateDump
{
    public static void Dump(string kind, ReadOnlyMemory<byte> part, SharedStateFiles files, string operatorId, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        string where = $"The snapshot of operator '{operatorId}' in '{files.Location}'";
        var set = SharedStateFileSet.Read(part.Span, where);
        string directory = Path.Combine(Path.GetTempPath(), "pipelinedsl-dump-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        try
        {
            foreach (var file in set.Files) files.DownloadAsync(file, Path.Combine(directory, file.LocalName), where, default).GetAwaiter().GetResult();
            foreach (var (name, content) in set.Inline) File.WriteAllBytes(Path.Combine(directory, name), content);
            var options = new DbOptions();
            var families = new ColumnFamilies();
            foreach (var family in RocksDbSharp.RocksDb.ListColumnFamilies(options, directory))
            {
                if (family != "default") families.Add(family, new ColumnFamilyOptions());
            }

            using var db = RocksDbSharp.RocksDb.OpenReadOnly(options, directory, families, false);
            using var it = db.NewIterator();
            it.SeekToFirst();
            switch (kind)
            {
                case OperatorKinds.StreamJoin:
                    RocksDbJoinLayout.Dump(it, lines);
                    break;
                case OperatorKinds.SessionWindow:
                    RocksDbSessionLayout.Dump(it, fieldNames, lines);
                    break;
                case OperatorKinds.EventTimeWindow:
                    RocksDbPaneLayout.Dump(it, fieldNames, lines);
                    break;
                default:
                    RocksDbKeyedLayout.Dump(it, fieldNames, lines);
                    break;
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

/// <summary>A keyed operator's entries (<see cref="RocksDbKeyedStore{TKey, TValue}"/>) as the heap layout's dumper writes them: <c>key</c>, <c>value</c>, <c>lastSeenBatch</c>.</summary>
internal static class RocksDbKeyedLayout
{
    public static void Dump(Iterator it, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        for (; it.Valid() && !lines.Full; it.Next())
        {
            var json = lines.Begin();
            var k = new MessagePackReader(it.GetKeySpan());
            json.WritePropertyName("key");
            Json.Write(ref k, json, null);
            var v = new MessagePackReader(it.GetValueSpan());
            long lastSeen = v.ReadInt64();
            json.WritePropertyName("value");
            Json.Write(ref v, json, fieldNames);
            json.WriteNumber("lastSeenBatch", lastSeen);
            lines.End();
        }
    }
}

/// <summary>
/// A stream join's records (<see cref="RocksDbJoinBuffer{TKey, TLeft, TRight}"/>: <c>[key bytes][side][sequence]</c> →
/// record) as the heap layout's dumper writes them: one line per key, <c>key</c>, <c>left</c> and <c>right</c> records
/// in the order they were kept. Keys come in the order of their bytes.
/// </summary>
internal static class RocksDbJoinLayout
{
    public static void Dump(Iterator it, JsonLines lines)
    {
        while (it.Valid() && !lines.Full)
        {
            var keyBytes = KeyOf(it.GetKeySpan()).ToArray();
            var lefts = new List<byte[]>();
            var rights = new List<byte[]>();
            for (; it.Valid() && it.GetKeySpan().StartsWith(keyBytes); it.Next())
            {
                byte side = it.GetKeySpan()[keyBytes.Length];
                (side == RocksDbJoinBuffer<int, int, int>.LeftSide ? lefts : rights).Add(it.GetValueSpan().ToArray());
            }

            var json = lines.Begin();
            var k = new MessagePackReader(keyBytes);
            json.WritePropertyName("key");
            Json.Write(ref k, json, null);
            // Without field names: the manifest records one state schema per operator, and a join keeps two record types.
            WriteRecords(json, "left", lefts);
            WriteRecords(json, "right", rights);
            lines.End();
        }
    }

    private static void WriteRecords(System.Text.Json.Utf8JsonWriter json, string name, List<byte[]> records)
    {
        json.WriteStartArray(name);
        foreach (var record in records)
        {
            var r = new MessagePackReader(record);
            Json.Write(ref r, json, null);
        }

        json.WriteEndArray();
    }

    // The key's MessagePack bytes: the one value at the start of the entry's key.
    private static ReadOnlySpan<byte> KeyOf(ReadOnlySpan<byte> entryKey)
    {
        var reader = new MessagePackReader(entryKey);
        return reader.ReadRaw();
    }
}

/// <summary>
/// A session window's keys (<see cref="RocksDbSessionStore{TKey, T}"/>: key bytes → <c>[[start, end, value], ...]</c>) as
/// the heap layout's dumper writes them: one line per key, <c>key</c> and <c>sessions</c>.
/// </summary>
internal static class RocksDbSessionLayout
{
    public static void Dump(Iterator it, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        for (; it.Valid() && !lines.Full; it.Next())
        {
            var json = lines.Begin();
            var k = new MessagePackReader(it.GetKeySpan());
            json.WritePropertyName("key");
            Json.Write(ref k, json, null);
            var v = new MessagePackReader(it.GetValueSpan());
            json.WriteStartArray("sessions");
            int n = v.ReadArrayHeader();
            for (int s = 0; s < n; s++)
            {
                v.ReadArrayHeader();
                json.WriteStartObject();
                json.WriteNumber("start", v.ReadInt64());
                json.WriteNumber("end", v.ReadInt64());
                json.WritePropertyName("value");
                Json.Write(ref v, json, fieldNames);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            lines.End();
        }
    }
}

/// <summary>
/// An event-time window's entries (<see cref="RocksDbPaneStore{TKey, T}"/>: <c>[table][start][key bytes]</c> → value) as
/// the heap layout's dumper writes them: one line per key and pane (<c>pane</c>: its start) or legacy window
/// (<c>window</c>), <c>key</c>, <c>value</c>. Panes come first, by start; a pane's keys in the order of their bytes.
/// </summary>
internal static class RocksDbPaneLayout
{
    public static void Dump(Iterator it, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        for (; it.Valid() && !lines.Full; it.Next())
        {
            var entryKey = it.GetKeySpan();
            long start = (long)(System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(entryKey[1..9]) ^ 0x8000_0000_0000_0000UL);
            var json = lines.Begin();
            json.WriteNumber(entryKey[0] == RocksDbPaneStore<int, int>.LegacyTable ? "window" : "pane", start);
            var k = new MessagePackReader(entryKey[9..]);
            json.WritePropertyName("key");
            Json.Write(ref k, json, null);
            var v = new MessagePackReader(it.GetValueSpan());
            json.WritePropertyName("value");
            Json.Write(ref v, json, fieldNames);
            lines.End();
        }
    }
}
