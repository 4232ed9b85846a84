using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace PipelineDsl.Generator.Tests;

/// <summary>Compiles test sources with the real PipelineDsl generator, in process.</summary>
internal static class GeneratorHarness
{
    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(() =>
    {
        var tpa = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator);
        var refs = tpa
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToList();
        refs.Add(MetadataReference.CreateFromFile(typeof(PipelineDsl.PipelineAttribute).Assembly.Location));
        refs.Add(MetadataReference.CreateFromFile(typeof(PipelineDsl.CompilerServices.PipelineBuilder).Assembly.Location));
        return refs.ToImmutableArray();
    });

    public static CSharpCompilation Compilation(params string[] sources) =>
        Compilation(sources.Select((s, i) => (s, $"Source{i}.cs")).ToArray());

    public static CSharpCompilation Compilation(params (string Source, string Path)[] sources) =>
        CSharpCompilation.Create(
            "TestPipelines",
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Source, ParseOptions, s.Path)),
            References.Value,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

    public static GeneratorDriver Driver(params (string Path, string Text)[] additionalFiles) =>
        DriverWith(additionalFiles.Select(f => Text(f.Path, f.Text)).ToArray());

    /// <summary>An additional file (a lock file) in memory; keep it to replace it in a driver later.</summary>
    public static AdditionalText Text(string path, string text) => new InMemoryText(path, text);

    public static GeneratorDriver DriverWith(params AdditionalText[] additionalFiles) =>
        CSharpGeneratorDriver.Create(
            new[] { new PipelineGenerator().AsSourceGenerator() },
            additionalTexts: additionalFiles,
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    private sealed class InMemoryText(string path, string text) : AdditionalText
    {
        public override string Path => path;

        public override Microsoft.CodeAnalysis.Text.SourceText GetText(CancellationToken cancellationToken = default) =>
            Microsoft.CodeAnalysis.Text.SourceText.From(text);
    }

    /// <summary>A lock file holding the given manifests, as the <c>lock</c> command writes it.</summary>
    public static string LockFile(params string[] manifests) =>
        "{\n  \"formatVersion\": 1,\n  \"pipelines\": [\n" + string.Join(",\n", manifests.Select(m => m.TrimEnd())) + "\n  ]\n}\n";

    public sealed record Result(
        GeneratorDriver Driver,
        Compilation Output,
        ImmutableArray<Diagnostic> GeneratorDiagnostics,
        ImmutableArray<Diagnostic> CompileDiagnostics,
        IReadOnlyDictionary<string, string> Sources)
    {
        public IEnumerable<Diagnostic> Errors => GeneratorDiagnostics.Concat(CompileDiagnostics).Where(d => d.Severity == DiagnosticSeverity.Error);

        public string Source(string hintSuffix) =>
            Sources.Single(s => s.Key.EndsWith(hintSuffix, StringComparison.Ordinal)).Value;
    }

    public static Result Run(params string[] sources) => Run(Compilation(sources));

    public static Result Run(Compilation compilation, GeneratorDriver? driver = null)
    {
        driver = (driver ?? Driver()).RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        var run = driver.GetRunResult();
        var sources = run.Results.SelectMany(r => r.GeneratedSources).ToDictionary(s => s.HintName, s => s.SourceText.ToString());
        var compile = output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning).ToImmutableArray();
        return new Result(driver, output, diagnostics, compile, sources);
    }

    /// <summary>Runs the generator, asserts a clean build, and loads the resulting assembly.</summary>
    public static Assembly Load(params string[] sources)
    {
        var result = Run(sources);
        Assert.Empty(result.GeneratorDiagnostics.Concat(result.CompileDiagnostics).Where(d => d.Severity >= DiagnosticSeverity.Warning).Select(d => d.ToString()));
        using var stream = new MemoryStream();
        var emit = result.Output.Emit(stream);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        stream.Position = 0;
        return new AssemblyLoadContext("pipeline-test-" + Guid.NewGuid(), isCollectible: true).LoadFromStream(stream);
    }
}
