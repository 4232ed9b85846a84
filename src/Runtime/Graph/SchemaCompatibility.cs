// This file is compiled into both the runtime and the generator (netstandard2.0), so that restore-time and
// compile-time checks apply one set of rules. Keep it free of APIs newer than netstandard2.0.
using System;
using System.Collections.Generic;
using System.Globalization;

namespace PipelineDsl.Graph
{

/// <summary>
/// Decides whether bytes written under one canonical state schema can be read under another, field by
/// field: what the generated formatters tolerate (fields added or removed, renamed — names are not in the
/// schema — integers widened, float32 to float64, a value made nullable, a List turned into an array).
/// Anything else needs a version bump with a migration, or an explicit discard.
/// </summary>
#if PIPELINEDSL_GENERATOR
internal
#else
public
#endif
static class SchemaCompatibility
{
    /// <summary>Returns null when <paramref name="written"/> data reads correctly as <paramref name="reading"/>, else the first reason it does not.</summary>
    public static string? Check(string written, string reading)
    {
        try
        {
            return Check(Parse(written), Parse(reading), "");
        }
        catch (FormatException e)
        {
            return "the schema cannot be compared: " + e.Message;
        }
    }

    private static readonly string[] SignedWidening = { "int8", "int16", "int32", "int64" };
    private static readonly string[] UnsignedWidening = { "uint8", "uint16", "uint32", "uint64" };

    private static string? Check(Node written, Node reading, string path)
    {
        string where = path.Length == 0 ? "the value" : "field " + path;
        if (written.Name == "{}" && reading.Name == "{}")
        {
            foreach (var pair in written.Fields!)
            {
                int key = pair.Key;
                if (!reading.Fields!.TryGetValue(key, out var now)) continue; // removed: the reader skips it
                string? reason = Check(pair.Value, now, path.Length == 0 ? key.ToString(CultureInfo.InvariantCulture) : path + "." + key.ToString(CultureInfo.InvariantCulture));
                if (reason is not null) return reason;
            }

            return null; // fields only in the new schema start at their defaults
        }

        if (reading.Name == "nullable" && written.Name != "nullable") return Check(written, reading.Arguments[0], path);
        if (written.Name != reading.Name)
        {
            if (Widens(written.Name, reading.Name)) return null;
            return $"{where} was {written} and is now {reading}";
        }

        if (written.Arguments.Count != reading.Arguments.Count) return $"{where} was {written} and is now {reading}";
        for (int i = 0; i < written.Arguments.Count; i++)
        {
            // Name the whole types (map<string,int64> to map<string,{0:string}>), not only the argument that differs.
            string? reason = Check(written.Arguments[i], reading.Arguments[i], "");
            if (reason is not null)
                return $"{where} was {written} and is now {reading}" + (reason.StartsWith("the value ", StringComparison.Ordinal) ? "" : " (" + reason + ")");
        }

        return null;
    }

    private static bool Widens(string from, string to)
    {
        if (from.StartsWith("enum:", StringComparison.Ordinal)) from = from.Substring(5);
        if (to.StartsWith("enum:", StringComparison.Ordinal)) to = to.Substring(5);
        if (from == to) return true;
        int fs = Array.IndexOf(SignedWidening, from), ts = Array.IndexOf(SignedWidening, to);
        int fu = Array.IndexOf(UnsignedWidening, from), tu = Array.IndexOf(UnsignedWidening, to);
        if (fs >= 0 && ts > fs) return true;
        if (fu >= 0 && tu > fu) return true;
        if (fu >= 0 && ts > fu) return true; // uintN fits intM for M > N
        return from == "float32" && to == "float64";
    }

    private sealed class Node
    {
        public Node(string name, List<Node> arguments, Dictionary<int, Node>? fields)
        {
            Name = name;
            Arguments = arguments;
            Fields = fields;
        }

        public string Name { get; }
        public List<Node> Arguments { get; }
        public Dictionary<int, Node>? Fields { get; }

        private IEnumerable<string> SortedFields()
        {
            var keys = new List<int>(Fields!.Keys);
            keys.Sort();
            foreach (int key in keys) yield return key.ToString(CultureInfo.InvariantCulture) + ":" + Fields[key];
        }

        public override string ToString() =>
            Fields is not null ? "{" + string.Join(",", SortedFields()) + "}"
            : Arguments.Count == 0 ? Name
            : Name + "<" + string.Join(",", Arguments) + ">";
    }

    private static Node Parse(string schema)
    {
        int i = 0;
        var node = ParseNode(schema, ref i);
        if (i != schema.Length) throw new FormatException($"unexpected '{schema[i]}' at {i} in '{schema}'");
        return node;
    }

    private static Node ParseNode(string s, ref int i)
    {
        if (i < s.Length && s[i] == '{')
        {
            i++;
            var fields = new Dictionary<int, Node>();
            while (i < s.Length && s[i] != '}')
            {
                int colon = s.IndexOf(':', i);
                if (colon < 0) throw new FormatException($"a field without ':' in '{s}'");
                int key = int.Parse(s.Substring(i, colon - i), NumberStyles.Integer, CultureInfo.InvariantCulture);
                i = colon + 1;
                fields[key] = ParseNode(s, ref i);
                if (i < s.Length && s[i] == ',') i++;
            }

            if (i >= s.Length) throw new FormatException($"an unclosed '{{' in '{s}'");
            i++;
            return new Node("{}", new List<Node>(), fields);
        }

        int start = i;
        while (i < s.Length && s[i] != '<' && s[i] != '>' && s[i] != ',' && s[i] != '}') i++;
        string name = s.Substring(start, i - start);
        var arguments = new List<Node>();
        if (i < s.Length && s[i] == '<')
        {
            i++;
            while (true)
            {
                arguments.Add(ParseNode(s, ref i));
                if (i < s.Length && s[i] == ',')
                {
                    i++;
                    continue;
                }

                if (i < s.Length && s[i] == '>')
                {
                    i++;
                    break;
                }

                throw new FormatException($"an unclosed '<' in '{s}'");
            }
        }

        if (name.Length == 0) throw new FormatException($"an empty type in '{s}'");
        return new Node(name, arguments, null);
    }
}
}
