using System.Globalization;

// Command-line parsing shared by the samples (linked into each project): --name value and --flag arguments.

internal sealed class UsageException(string message) : Exception(message);

/// <summary>--name value and --flag arguments; <c>flags</c> names the options that take no value.</summary>
internal sealed class Arguments
{
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal);

    public static Arguments Parse(string[] args, params string[] flags)
    {
        var result = new Arguments();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new UsageException($"unexpected argument '{args[i]}'");
            string name = args[i][2..];
            if (Array.IndexOf(flags, name) >= 0)
            {
                result._values[name] = null;
                continue;
            }

            if (i + 1 >= args.Length) throw new UsageException($"--{name} needs a value");
            result._values[name] = args[++i];
        }

        if (result.Flag("bounded") && result.Flag("continuous")) throw new UsageException("--bounded and --continuous exclude each other");
        return result;
    }

    public bool Flag(string name) => _values.ContainsKey(name);

    public string? Value(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public long Long(string name, long fallback)
    {
        string? text = Value(name);
        if (text is null) return fallback;
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) && v > 0
            ? v
            : throw new UsageException($"--{name} must be a positive whole number, not '{text}'");
    }
}
