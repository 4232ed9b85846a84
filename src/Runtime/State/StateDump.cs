using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using System.Text.Json;
using PipelineDsl.Graph;
using PipelineDsl.Execution;
using PipelineDsl.Serialization;

namespace PipelineDsl.State;

/// <summary>
/// An operator's snapshot state as JSON lines (<c>pipelinedsl dump-state</c>). Each layout is read by the dumper
/// that sits beside its writer (<see cref="KeyedStateLayout"/>, <see cref="PaneLayout"/>, <see cref="SessionLayout"/>,
/// <see cref="BatchWindowLayout"/>, <see cref="WatermarkLayout"/>, <see cref="JoinBufferLayout"/>); a kind without one
/// (a state written by a newer build) is written as stored, one line per entry, without field names.
/// </summary>
internal static class StateDump
{
    public static void WriteJsonLines(string kind, ReadOnlySpan<byte> entries, IReadOnlyDictionary<long, string> fieldNames, int limit, TextWriter output)
    {
        var lines = new JsonLines(output, limit);
        var r = new MessagePackReader(entries);
        switch (kind)
        {
            case OperatorKinds.UpdateState or OperatorKinds.Reduce:
                KeyedStateLayout.Dump(ref r, fieldNames, lines);
                break;
            case OperatorKinds.Window:
                BatchWindowLayout.Dump(ref r, fieldNames, lines);
                break;
            case OperatorKinds.EventTimeWindow:
                PaneLayout.Dump(ref r, fieldNames, lines);
                break;
            case OperatorKinds.SessionWindow:
                SessionLayout.Dump(ref r, fieldNames, lines);
                break;
            case OperatorKinds.Watermark:
                WatermarkLayout.Dump(ref r, lines);
                break;
            case OperatorKinds.StreamJoin:
                JoinBufferLayout.Dump(ref r, lines);
                break;
            default:
                bool single = r.NextType != MessagePackType.Array;
                int count = single ? 1 : r.ReadArrayHeader();
                for (int i = 0; i < count && !lines.Full; i++)
                {
                    var json = lines.Begin();
                    json.WriteString("kind", kind);
                    json.WritePropertyName(single ? "state" : "entry");
                    Json.Write(ref r, json, null);
                    lines.End();
                }

                break;
        }
    }
}

/// <summary>What the layouts of the form <c>[[key, [[n1, n2, ..., value], ...]], ...]</c> share (sessions, batch-window panes).</summary>
internal static class KeyedListLayout
{
    /// <summary>One line per key: <c>{"key": …, listName: [{numberNames[0]: n1, …, "value": …}, …]}</c>.</summary>
    public static void Dump(ref MessagePackReader r, string listName, string[] numberNames, IReadOnlyDictionary<long, string> fieldNames, JsonLines lines)
    {
        int count = r.ReadArrayHeader();
        for (int i = 0; i < count && !lines.Full; i++)
        {
            r.ReadArrayHeader();
            var json = lines.Begin();
            json.WritePropertyName("key");
            Json.Write(ref r, json, null);
            json.WriteStartArray(listName);
            int items = r.ReadArrayHeader();
            for (int p = 0; p < items; p++)
            {
                r.ReadArrayHeader();
                json.WriteStartObject();
                foreach (string name in numberNames) json.WriteNumber(name, r.ReadInt64());
                json.WritePropertyName("value");
                Json.Write(ref r, json, fieldNames);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            lines.End();
        }
    }
}

/// <summary>Writes JSON objects one per line, up to a limit.</summary>
internal sealed class JsonLines
{
    private readonly TextWriter _output;
    private readonly int _limit;
    private readonly MemoryStream _buffer = new();
    private Utf8JsonWriter? _json;
    private int _written;

    public JsonLines(TextWriter output, int limit)
    {
        _output = output;
        _limit = limit;
    }

    public bool Full => _written >= _limit;

    public Utf8JsonWriter Begin()
    {
        _buffer.SetLength(0);
        _json = new Utf8JsonWriter(_buffer);
        _json.WriteStartObject();
        return _json;
    }

    public void End()
    {
        _json!.WriteEndObject();
        _json.Dispose();
        _output.WriteLine(Encoding.UTF8.GetString(_buffer.GetBuffer(), 0, (int)_buffer.Length));
        _written++;
    }
}

/// <summary>MessagePack values as JSON.</summary>
internal static class Json
{
    /// <summary>One MessagePack value as JSON; integer map keys become <paramref name="fieldNames"/> where known (a state contract's fields).</summary>
    public static void Write(ref MessagePackReader r, Utf8JsonWriter json, IReadOnlyDictionary<long, string>? fieldNames)
    {
        switch (r.NextType)
        {
            case MessagePackType.Nil: r.ReadNil(); json.WriteNullValue(); break;
            case MessagePackType.Boolean: json.WriteBooleanValue(r.ReadBoolean()); break;
            case MessagePackType.Integer:
                var peek = r;
                try { json.WriteNumberValue(r.ReadInt64()); }
                catch (MessagePackException) { r = peek; json.WriteNumberValue(r.ReadUInt64()); }
                break;
            case MessagePackType.Float:
                double d = r.ReadDouble();
                // JSON has no NaN or infinities: written as the strings JSON tools (Json.NET, Jackson, jq) use for them.
                if (double.IsFinite(d)) json.WriteNumberValue(d);
                else json.WriteStringValue(double.IsNaN(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity");
                break;
            case MessagePackType.String: json.WriteStringValue(r.ReadString()); break;
            case MessagePackType.Binary: json.WriteBase64StringValue(r.ReadBinarySpan()); break;
            case MessagePackType.Array:
                int n = r.ReadArrayHeader();
                json.WriteStartArray();
                for (int i = 0; i < n; i++) Write(ref r, json, null);
                json.WriteEndArray();
                break;
            case MessagePackType.Map:
                int m = r.ReadMapHeader();
                json.WriteStartObject();
                for (int i = 0; i < m; i++)
                {
                    string name;
                    if (r.NextType == MessagePackType.Integer)
                    {
                        long key = r.ReadInt64();
                        name = fieldNames is not null && fieldNames.TryGetValue(key, out var fieldName) ? fieldName : key.ToString(CultureInfo.InvariantCulture);
                    }
                    else if (r.NextType == MessagePackType.String) name = r.ReadString() ?? "";
                    else name = Convert.ToHexString(r.ReadRaw());
                    json.WritePropertyName(name);
                    Write(ref r, json, null);
                }

                json.WriteEndObject();
                break;
            case MessagePackType.Extension:
                var ext = r;
                ext.ReadExtension(out sbyte type);
                if (type == -1) json.WriteStringValue(r.ReadDateTime().ToString("O", CultureInfo.InvariantCulture));
                else json.WriteBase64StringValue(r.ReadExtension(out _));
                break;
        }
    }
}
