using System;
using System.CommandLine;
using System.IO;
using System.Threading.Tasks;

// Linked into every program of this repository (samples, bench, dev broker): one rule for how a command line
// fails. --help/-h prints usage and exits 0; an unknown option, a missing or badly typed value is one
// "error:" line per problem on standard error, a pointer to --help, and exit code 2 (1 stays for a run that
// failed, as the samples document).

/// <summary>Runs a System.CommandLine root command with the repository's exit-code rules.</summary>
internal static class CommandLineProgram
{
    /// <summary>Exit code of a command line that could not be parsed.</summary>
    public const int UsageError = 2;

    /// <summary>Parses and runs <paramref name="root"/>'s action (or a subcommand's); returns its exit code.</summary>
    public static Task<int> RunAsync(RootCommand root, string[] args) => RunAsync(root, args, Console.Out, Console.Error);

    /// <summary>The same, writing help to <paramref name="output"/> and errors to <paramref name="error"/>.</summary>
    public static async Task<int> RunAsync(RootCommand root, string[] args, TextWriter output, TextWriter error)
    {
        var result = root.Parse(args);
        if (result.Errors.Count > 0) return Fail(root, result, error);
        // The programs handle SIGINT/SIGTERM themselves (finish the batch, then stop), so System.CommandLine must
        // not cancel and then kill them after its own timeout.
        return await result.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null, Output = output, Error = error });
    }

    /// <summary>Synchronous <see cref="RunAsync"/>.</summary>
    public static int Run(RootCommand root, string[] args) => RunAsync(root, args).GetAwaiter().GetResult();

    /// <summary>
    /// For programs written as top-level statements: parses <paramref name="args"/> into <paramref name="parsed"/>
    /// and returns null when the program should go on; otherwise the exit code to return at once
    /// (0 after --help, <see cref="UsageError"/> after a bad command line).
    /// </summary>
    public static int? Parse(RootCommand root, string[] args, out ParseResult parsed)
    {
        ParseResult? captured = null;
        root.SetAction(r =>
        {
            captured = r;
            return 0;
        });
        int code = Run(root, args);
        parsed = captured!;
        return captured is null || code != 0 ? code : null;
    }

    /// <summary>An option's value must be 1 or more.</summary>
    public static Option<T> Positive<T>(this Option<T> option)
        where T : struct, IComparable<T>
    {
        option.Validators.Add(r =>
        {
            if (!TryGetValue(r, out T value)) return;
            if (value.CompareTo(default) <= 0) r.AddError($"{option.Name} must be 1 or more, not {value}.");
        });
        return option;
    }

    /// <summary>An option's value must be 0 or more.</summary>
    public static Option<T> NotNegative<T>(this Option<T> option)
        where T : struct, IComparable<T>
    {
        option.Validators.Add(r =>
        {
            if (!TryGetValue(r, out T value)) return;
            if (value.CompareTo(default) < 0) r.AddError($"{option.Name} must be 0 or more, not {value}.");
        });
        return option;
    }

    /// <summary>The option's value, or false when it did not parse (System.CommandLine reports that error itself).</summary>
    private static bool TryGetValue<T>(System.CommandLine.Parsing.OptionResult result, out T value)
    {
        try
        {
            value = result.GetValueOrDefault<T>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = default!;
            return false;
        }
    }

    private static int Fail(RootCommand root, ParseResult result, TextWriter writer)
    {
        foreach (var error in result.Errors) writer.WriteLine("error: " + error.Message);
        string name = Path.GetFileNameWithoutExtension(Environment.ProcessPath) is "dotnet" or "testhost" or null ? root.Name : Path.GetFileNameWithoutExtension(Environment.ProcessPath)!;
        writer.WriteLine($"Run '{name} --help' for usage.");
        return UsageError;
    }
}
