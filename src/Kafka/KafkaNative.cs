using System;
using System.Collections.Generic;
using System.IO;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace PipelineDsl.Kafka;

/// <summary>
/// Which librdkafka this process uses: always one shipped by the <c>librdkafka.redist</c> package, and one
/// library for Confluent.Kafka and for PipelineDsl.Kafka.Testing's own P/Invokes (the mock cluster) alike.
/// </summary>
/// <remarks>
/// Why not leave it to the runtime: on Linux the package ships several builds (<c>librdkafka.so</c>, then
/// <c>centos8-</c> and <c>alpine-librdkafka.so</c>). The default one needs <c>libsasl2.so.3</c>, which
/// Debian 12 lacks; when it fails to load, the runtime's next probe is the operating system's search path,
/// which finds any <c>librdkafka.so</c> in <c>/usr/local/lib</c> (an old, hand-built one, perhaps without the
/// functions Confluent.Kafka calls) before Confluent.Kafka's own fallback to the <c>centos8</c> build. And
/// two different copies of librdkafka in one process would give the mock cluster a broker that the clients
/// do not share a library with. So this resolver, installed on both assemblies before their first P/Invoke,
/// answers "librdkafka" with the first package build that loads, from the directories the host lists for
/// the application's native assets, and never with a library from the system's search path.
/// </remarks>
internal static class KafkaNative
{
    public const string LibraryName = "librdkafka";

    private static readonly object Gate = new();
    private static bool _installed;
    private static IntPtr _handle;
    private static string? _path;
    private static string? _failure;

    /// <summary>The file of the librdkafka this process bound (after the first Kafka call), or null.</summary>
    public static string? LoadedPath
    {
        get { lock (Gate) return _path; }
    }

    /// <summary>Why no package build loaded, when none did; null otherwise.</summary>
    public static string? LoadFailure
    {
        get { lock (Gate) return _failure; }
    }

    // A library's module initializer (CA2255) is deliberate here: the resolver must be in place before the first
    // P/Invoke of Confluent.Kafka, and any use of this assembly's connectors loads this module first.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void InstallOnLoad() => EnsureResolver();

    /// <summary>Installs the resolver on Confluent.Kafka's assembly and on this one (once, idempotent).</summary>
    public static void EnsureResolver()
    {
        lock (Gate)
        {
            if (_installed) return;
            _installed = true;
        }

        Install(typeof(KafkaNative).Assembly);
        Install(typeof(Library).Assembly);
    }

    /// <summary>
    /// Loads the library now (it is otherwise loaded at the first Kafka call) and throws one clear
    /// <see cref="InvalidOperationException"/> when it cannot be loaded, instead of a type-initializer stack trace.
    /// </summary>
    public static string EnsureLoaded()
    {
        EnsureResolver();
        try
        {
            // Confluent.Kafka binds its delegates on first use; its version is the cheapest call that forces it.
            _ = Library.VersionString;
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or EntryPointNotFoundException or FileLoadException or InvalidOperationException)
        {
            throw new InvalidOperationException(
                "librdkafka could not be loaded: " + (LoadFailure ?? e.GetBaseException().Message) +
                " It comes with the NuGet package librdkafka.redist (a dependency of Confluent.Kafka); see the README's Kafka section for the platforms it covers.", e);
        }

        return LoadedPath ?? "(the runtime's default resolution)";
    }

    /// <summary>Binds another assembly's librdkafka P/Invokes (PipelineDsl.Kafka.Testing's mock cluster) to the same library.</summary>
    public static void InstallResolver(Assembly assembly)
    {
        EnsureResolver();
        Install(assembly);
    }

    private static void Install(Assembly assembly)
    {
        try
        {
            NativeLibrary.SetDllImportResolver(assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // The application installed its own resolver for this assembly: its choice wins.
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name is not (LibraryName or "centos8-librdkafka" or "alpine-librdkafka")) return IntPtr.Zero;
        lock (Gate)
        {
            if (_handle != IntPtr.Zero) return _handle;
            var tried = new List<string>();
            foreach (var file in Candidates())
            {
                if (!File.Exists(file)) continue;
                if (NativeLibrary.TryLoad(file, out var handle))
                {
                    _handle = handle;
                    _path = file;
                    _failure = null;
                    return handle;
                }

                tried.Add(file);
            }

            _failure = tried.Count == 0
                ? "no librdkafka from the librdkafka.redist package was found among the application's native assets."
                : "none of the package's builds loads on this system (tried " + string.Join(", ", tried) + ").";
            // Returning zero lets the runtime try its default resolution, so a user who deploys librdkafka
            // by hand (and no package) still works; the failure text above explains a total miss.
            return IntPtr.Zero;
        }
    }

    /// <summary>The package's builds for this platform, in the order Confluent.Kafka itself prefers them.</summary>
    internal static IEnumerable<string> Candidates()
    {
        string[] files;
        if (OperatingSystem.IsWindows()) files = new[] { "librdkafka.dll" };
        else if (OperatingSystem.IsMacOS()) files = new[] { "librdkafka.dylib" };
        else files = new[] { "librdkafka.so", "centos8-librdkafka.so", "alpine-librdkafka.so" };

        foreach (var file in files)
        {
            foreach (var directory in NativeDirectories())
            {
                yield return Path.Combine(directory, file);
            }
        }
    }

    /// <summary>
    /// Where the host put the application's native assets: NATIVE_DLL_SEARCH_DIRECTORIES holds the package
    /// folders from the .deps.json (a framework-dependent run) or the application's folder (a published one).
    /// </summary>
    private static IEnumerable<string> NativeDirectories()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var listed = AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string ?? "";
        foreach (var entry in listed.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (seen.Add(entry)) yield return entry;
        }

        // A published application may keep the RID folders as they are in the package.
        var rid = RuntimeInformation.RuntimeIdentifier;
        var arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        foreach (var folder in new[] { rid, os + "-" + arch })
        {
            var directory = Path.Combine(AppContext.BaseDirectory, "runtimes", folder, "native");
            if (seen.Add(directory)) yield return directory;
        }
    }
}
