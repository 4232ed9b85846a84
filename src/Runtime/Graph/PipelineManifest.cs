using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;

namespace PipelineDsl.Graph;

/// <summary>
/// The self-description of a pipeline's graph: per operator its id, version, kind, inputs, types and
/// state schema. The generator emits it as canonical JSON; every checkpoint stores it so that a later
/// build can tell whether it can restore that checkpoint.
/// </summary>
public sealed class PipelineManifest
{
    /// <summary>The manifest format this runtime reads and writes.</summary>
    public const int CurrentFormatVersion = 1;

    private readonly Dictionary<string, OperatorManifest> _byId;

    private PipelineManifest(int formatVersion, string pipelineId, IReadOnlyList<OperatorManifest> operators, IReadOnlyList<string> retired, string json)
    {
        FormatVersion = formatVersion;
        PipelineId = pipelineId;
        Operators = operators;
        Retired = retired;
        Json = json;
        _byId = operators.ToDictionary(o => o.Id, StringComparer.Ordinal);
    }

    /// <summary>The manifest format version.</summary>
    public int FormatVersion { get; }

    /// <summary>The pipeline id.</summary>
    public string PipelineId { get; }

    /// <summary>The operators, ordered by id (ordinal).</summary>
    public IReadOnlyList<OperatorManifest> Operators { get; }

    /// <summary>Operators of earlier builds removed on purpose (their state and positions are dropped on restore).</summary>
    public IReadOnlyList<string> Retired { get; }

    /// <summary>The canonical JSON text the manifest was read from.</summary>
    public string Json { get; }

    /// <summary>The operator with the given id, or null.</summary>
    public OperatorManifest? Find(string id) => _byId.TryGetValue(id, out var op) ? op : null;

    /// <summary>Parses a manifest from its JSON text.</summary>
    /// <exception cref="FormatException">The text is not a manifest; the message says what is wrong.</exception>
    public static PipelineManifest Parse(string json)
    {
        if (json is null) throw new ArgumentNullException(nameof(json));
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            int format = Required(root, "formatVersion", "manifest").GetInt32();
            if (format > CurrentFormatVersion)
                throw new FormatException($"The manifest has format version {format}; this runtime reads up to {CurrentFormatVersion}. Upgrade PipelineDsl.");
            string pipeline = Required(root, "pipeline", "manifest").GetString() ?? throw new FormatException("The manifest's 'pipeline' is null.");
            var operators = new List<OperatorManifest>();
            foreach (var op in Required(root, "operators", "manifest").EnumerateArray())
                operators.Add(OperatorManifest.FromJson(op));
            var duplicate = operators.GroupBy(o => o.Id, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null) throw new FormatException($"The manifest lists operator '{duplicate.Key}' twice.");
            var retired = root.TryGetProperty("retired", out var r) ? r.EnumerateArray().Select(x => x.GetString() ?? "").ToArray() : Array.Empty<string>();
            return new PipelineManifest(format, pipeline, operators, retired, json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"The manifest is not valid JSON: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            throw new FormatException($"The manifest has a value of the wrong type: {e.Message}", e);
        }
    }

    internal static JsonElement Required(JsonElement element, string name, string where)
    {
        if (element.ValueKind != JsonValueKind.Object || !element.TryGetProperty(name, out var value))
            throw new FormatException($"The {where} has no '{name}'.");
        return value;
    }
}

/// <summary>One operator's entry in a <see cref="PipelineManifest"/>.</summary>
public sealed class OperatorManifest
{
    private OperatorManifest(
        string id, int version, string kind, IReadOnlyList<string> inputs,
        string? inputType, string? outputType, string? keyType, string? stateType, StateSchema? stateSchema,
        IReadOnlyList<int> migratesFrom, IReadOnlyList<int> discardsStateFrom, IReadOnlyDictionary<string, string> properties)
    {
        Properties = properties;
        MigratesFrom = migratesFrom;
        DiscardsStateFrom = discardsStateFrom;
        Id = id;
        Version = version;
        Kind = kind;
        Inputs = inputs;
        InputType = inputType;
        OutputType = outputType;
        KeyType = keyType;
        StateType = stateType;
        StateSchema = stateSchema;
    }

    /// <summary>The stable id.</summary>
    public string Id { get; }

    /// <summary>
    /// Every scalar property of the entry as canonical text (numbers in invariant digits, <c>inputs</c> joined by
    /// commas), for the compatibility rules of <see cref="OperatorCompatibility"/>.
    /// </summary>
    internal IReadOnlyDictionary<string, string> Properties { get; }

    /// <summary>A property's canonical text, or null when the entry does not record it.</summary>
    internal string? Property(string name) => Properties.TryGetValue(name, out var value) ? value : null;

    /// <summary>The version.</summary>
    public int Version { get; }

    /// <summary>The kind, in the manifest's spelling (for example <c>update-state</c>).</summary>
    public string Kind { get; }

    /// <summary>The ids of the inputs, in order.</summary>
    public IReadOnlyList<string> Inputs { get; }

    /// <summary>The input record type (the left one for joins), if any.</summary>
    public string? InputType { get; }

    /// <summary>The output record type, if any.</summary>
    public string? OutputType { get; }

    /// <summary>The key type of a keyed operator.</summary>
    public string? KeyType { get; }

    /// <summary>The type kept in checkpoints by a stateful operator.</summary>
    public string? StateType { get; }

    /// <summary>The schema of the state kept in checkpoints, for stateful operators.</summary>
    public StateSchema? StateSchema { get; }

    /// <summary>Older versions whose state this operator migrates.</summary>
    public IReadOnlyList<int> MigratesFrom { get; }

    /// <summary>Older versions whose state this operator drops on restore.</summary>
    public IReadOnlyList<int> DiscardsStateFrom { get; }

    /// <summary>The manifest spelling of an <see cref="OperatorKind"/> (the vocabulary is <see cref="OperatorKinds"/>).</summary>
    public static string KindName(OperatorKind kind) => kind switch
    {
        OperatorKind.Source => OperatorKinds.Source,
        OperatorKind.Map => OperatorKinds.Map,
        OperatorKind.FlatMap => OperatorKinds.FlatMap,
        OperatorKind.Filter => OperatorKinds.Filter,
        OperatorKind.Reduce => OperatorKinds.Reduce,
        OperatorKind.UpdateState => OperatorKinds.UpdateState,
        OperatorKind.Window => OperatorKinds.Window,
        OperatorKind.Union => OperatorKinds.Union,
        OperatorKind.Join => OperatorKinds.Join,
        OperatorKind.Sink => OperatorKinds.Sink,
        OperatorKind.ForEachBatch => OperatorKinds.ForEachBatch,
        OperatorKind.Watermark => OperatorKinds.Watermark,
        OperatorKind.EventTimeWindow => OperatorKinds.EventTimeWindow,
        OperatorKind.SessionWindow => OperatorKinds.SessionWindow,
        OperatorKind.StreamJoin => OperatorKinds.StreamJoin,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    internal static OperatorManifest FromJson(JsonElement e)
    {
        string id = PipelineManifest.Required(e, "id", "operator entry").GetString() ?? throw new FormatException("An operator entry has a null 'id'.");
        string where = $"entry of operator '{id}'";
        int version = PipelineManifest.Required(e, "version", where).GetInt32();
        string kind = PipelineManifest.Required(e, "kind", where).GetString() ?? throw new FormatException($"The {where} has a null 'kind'.");
        var inputs = PipelineManifest.Required(e, "inputs", where).EnumerateArray().Select(i => i.GetString() ?? "").ToArray();
        StateSchema? schema = e.TryGetProperty("stateSchema", out var s) ? StateSchema.FromJson(s, where) : null;
        var properties = new Dictionary<string, string>(StringComparer.Ordinal) { ["inputs"] = OperatorCompatibility.Canonical(inputs) };
        foreach (var p in e.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.String) properties[p.Name] = p.Value.GetString() ?? "";
            else if (p.Value.ValueKind == JsonValueKind.Number) properties[p.Name] = p.Value.GetRawText();
        }

        return new OperatorManifest(id, version, kind, inputs, Optional(e, "inputType"), Optional(e, "outputType"), Optional(e, "keyType"), Optional(e, "stateType"), schema,
            Ints(e, "migratesFrom"), Ints(e, "discardsStateFrom"), properties);
    }

    private static int[] Ints(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().Select(x => x.GetInt32()).ToArray() : Array.Empty<int>();

    private static string? Optional(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}

/// <summary>The schema of a stateful operator's checkpointed state.</summary>
public sealed class StateSchema
{
    private StateSchema(string fingerprint, string keySchema, string valueSchema, IReadOnlyList<StateField> fields)
    {
        Fingerprint = fingerprint;
        KeySchema = keySchema;
        ValueSchema = valueSchema;
        Fields = fields;
    }

    /// <summary>
    /// A hash of the state value's field keys and field types (never field or type names): equal
    /// fingerprints mean the stored bytes decode the same way.
    /// </summary>
    public string Fingerprint { get; }

    /// <summary>The canonical schema of the key type (for example <c>string</c>).</summary>
    public string KeySchema { get; }

    /// <summary>The canonical schema of the state value, which the fingerprint hashes.</summary>
    public string ValueSchema { get; }

    /// <summary>The top-level fields of a state contract (empty for a primitive state type).</summary>
    public IReadOnlyList<StateField> Fields { get; }

    internal static StateSchema FromJson(JsonElement e, string where)
    {
        where = "state schema of the " + where;
        var fields = new List<StateField>();
        if (e.TryGetProperty("fields", out var fs))
        {
            foreach (var f in fs.EnumerateArray())
            {
                fields.Add(new StateField(
                    PipelineManifest.Required(f, "key", where).GetInt32(),
                    PipelineManifest.Required(f, "name", where).GetString() ?? "",
                    PipelineManifest.Required(f, "type", where).GetString() ?? ""));
            }
        }

        return new StateSchema(
            PipelineManifest.Required(e, "fingerprint", where).GetString() ?? "",
            PipelineManifest.Required(e, "key", where).GetString() ?? "",
            PipelineManifest.Required(e, "value", where).GetString() ?? "",
            fields);
    }
}

/// <summary>One field of a state contract: its stable key, its current name and its canonical type.</summary>
/// <param name="Key">The stable field key.</param>
/// <param name="Name">The member name in the build that wrote the manifest (informational).</param>
/// <param name="Type">The canonical schema of the field's type.</param>
public sealed record StateField(int Key, string Name, string Type);
