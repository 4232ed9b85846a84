using System;
using System.Collections.Generic;
using System.IO;
using PipelineDsl.Serialization;
using PipelineDsl.State;
using RocksDbSharp;

namespace PipelineDsl.RocksDb;

/// <summary>
/// Reads a keyed operator's RocksDB snapshot (a <see cref="SharedStateFileSet"/>) for <c>pipelinedsl dump-state</c>:
/// the files are fetched into a temporary directory (verified as for a restore), the database is opened read-only,
/// and each entry is written as the in-memory layout's dumper writes one (<c>key</c>, <c>value</c>,
/// <c>lastSeenBatch</c>). The layout of an entry belongs to <see cref="RocksDbKeyedStore{TKey, TValue}"/>.
/// </summary>
internal static class RocksDbKeyedLayout
{
    public static void Dump(ReadOnlyMemory<byte> part, SharedStateFiles files, string operatorId, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
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
            for (it.SeekToFirst(); it.Valid() && !lines.Full; it.Next()) WriteEntry(it.GetKeySpan(), it.GetValueSpan(), fieldNames, lines);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static void WriteEntry(ReadOnlySpan<byte> key, ReadOnlySpan<byte> stored, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        var json = lines.Begin();
        var k = new MessagePackReader(key);
        json.WritePropertyName("key");
        Json.Write(ref k, json, null);
        var v = new MessagePackReader(stored);
        long lastSeen = v.ReadInt64();
        json.WritePropertyName("value");
        Json.Write(ref v, json, fieldNames);
        json.WriteNumber("lastSeenBatch", lastSeen);
        lines.End();
    }
}
