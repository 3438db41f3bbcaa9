using System.Reflection;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Peft.Transformers.Tests.Reliability;

/// <summary>
/// src/ passes no TorchSharp <c>Scalar</c> that its finalizer could free during the native call (docs/ARCHITECTURE.md,
/// "Scalars and the finalizer"; <see cref="Peft.Core.Torch.HeldScalars"/>): no implicit conversion to <c>Scalar</c>, no
/// <c>Tensor</c> operator with a primitive operand (TorchSharp converts it inside), and no call of a TorchSharp member
/// that makes a Scalar and drops it (<c>linalg.vector_norm</c> / <c>matrix_norm</c> with a double <c>ord</c>: the
/// checkpoint fuzz's "toDouble" failures). Each library is compiled with Roslyn the way its build does (its .cs files
/// and linked files, its defines, global usings and project references, the framework's reference assemblies and
/// source generators, the package assemblies from this test's output) and the compilation must have no errors first,
/// so a missing reference cannot read as "no findings". Formerly eng/scalar-scan.sh, outside the test command.
/// </summary>
public sealed class ScalarScanTests
{
    public static TheoryData<string> Libraries() => ["Peft.Core", "Peft.Datasets", "Peft.Evaluate", "Peft.Transformers"];

    // TorchSharp members that make a Scalar from a primitive argument and keep no reference to it during the native call.
    private static readonly HashSet<string> DroppingMembers = new(StringComparer.Ordinal)
    {
        "TorchSharp.torch.linalg.vector_norm(TorchSharp.torch.Tensor, double, long[]?, bool)",
        "TorchSharp.torch.linalg.matrix_norm(TorchSharp.torch.Tensor, double, long[]?, bool)",
        // the overloads without alpha / value pass an implicit 1 to the overload with one (found by the checkpoint fuzz:
        // "toFloat" from add_(Scalar) in AdamW's step counter)
        "TorchSharp.torch.Tensor.add(TorchSharp.torch.Tensor)",
        "TorchSharp.torch.Tensor.add(TorchSharp.Scalar)",
        "TorchSharp.torch.Tensor.add_(TorchSharp.torch.Tensor)",
        "TorchSharp.torch.Tensor.add_(TorchSharp.Scalar)",
        "TorchSharp.torch.Tensor.addcdiv(TorchSharp.torch.Tensor, TorchSharp.torch.Tensor)",
        "TorchSharp.torch.Tensor.addcdiv_(TorchSharp.torch.Tensor, TorchSharp.torch.Tensor)",
        "TorchSharp.torch.Tensor.operator +(TorchSharp.torch.Tensor, TorchSharp.torch.Tensor)",
    };

    [Theory]
    [MemberData(nameof(Libraries))]
    public void Library_passes_no_finalizable_implicit_Scalar_to_libtorch(string library)
    {
        // Peft.Core is compiled with a canary file holding one site of each kind: the scan must report exactly those.
        var compilation = Compile(library);
        if (library == "Peft.Core")
            compilation = compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText(Canary, (CSharpParseOptions)compilation.SyntaxTrees.First().Options, CanaryPath));
        // one semantic model per file binds it once for both the error check and the scan
        var models = compilation.SyntaxTrees.ToDictionary(t => t, t => compilation.GetSemanticModel(t));
        var errors = models.Values.SelectMany(m => m.GetDiagnostics()).Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
        Assert.True(errors.Count == 0, $"{library} does not compile as its build does (the scan would miss code):\n" + string.Join("\n", errors));
        Assert.True(models.Count > 5, $"{library}: only {models.Count} files compiled");

        var findings = new List<string>();
        foreach (var (tree, model) in models.Where(kv => File.Exists(kv.Key.FilePath) || kv.Key.FilePath == CanaryPath))
        {
            foreach (var node in tree.GetRoot().DescendantNodes().OfType<ExpressionSyntax>())
            {
                string Where() => $"{Path.GetFileName(tree.FilePath)}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {node}";
                var conversion = model.GetConversion(node);
                if (conversion.IsUserDefined && conversion.MethodSymbol?.ContainingType?.ToDisplayString() == "TorchSharp.Scalar")
                    findings.Add("implicit Scalar " + Where());
                if (node is BinaryExpressionSyntax && model.GetSymbolInfo(node).Symbol is IMethodSymbol op
                    && op.ContainingType?.ToDisplayString() == "TorchSharp.torch.Tensor" && op.Parameters.Any(p => IsPrimitive(p.Type)))
                    findings.Add("Tensor operator with a primitive operand " + Where());
                if (node is InvocationExpressionSyntax or BinaryExpressionSyntax or AssignmentExpressionSyntax && model.GetSymbolInfo(node).Symbol is IMethodSymbol m
                    && DroppingMembers.Contains(m.ToDisplayString()))
                    findings.Add("TorchSharp member that drops its Scalar " + Where());
            }
        }
        if (library == "Peft.Core")
        {
            var canary = findings.Where(f => f.Contains(Path.GetFileName(CanaryPath), StringComparison.Ordinal)).ToList();
            Assert.True(canary.Count == 5, "the scan missed a canary site:\n" + string.Join("\n", canary));
            findings = findings.Except(canary).ToList();
        }
        Assert.True(findings.Count == 0, $"{library}: {findings.Count} Scalars a finalizer could free during the native call; use HeldScalars.Of(x):\n" + string.Join("\n", findings.Take(20)));
    }

    private const string CanaryPath = "ScalarScanCanary.cs";

    private const string Canary = """
        namespace ScalarScanCanary;
        internal static class Sites
        {
            public static TorchSharp.torch.Tensor Conversion(TorchSharp.torch.Tensor t) => t.mul(0.5);
            public static TorchSharp.torch.Tensor Operator(TorchSharp.torch.Tensor t) => t * 2.0;
            public static TorchSharp.torch.Tensor Norm(TorchSharp.torch.Tensor t) => TorchSharp.torch.linalg.vector_norm(t, 2);
            public static TorchSharp.torch.Tensor Add(TorchSharp.torch.Tensor t) => t.add(t);
            public static TorchSharp.torch.Tensor Plus(TorchSharp.torch.Tensor t) => t + t;
        }
        """;

    private static bool IsPrimitive(ITypeSymbol t) =>
        t.SpecialType is SpecialType.System_Double or SpecialType.System_Single or SpecialType.System_Int32 or SpecialType.System_Int64 or SpecialType.System_Boolean;

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Peft.sln"))) return d.FullName;
        throw new DirectoryNotFoundException($"no Peft.sln above {AppContext.BaseDirectory}");
    }

    private static Compilation Compile(string library)
    {
        string dir = Path.Combine(RepoRoot(), "src", library);
        var project = XDocument.Load(Path.Combine(dir, library + ".csproj"));
        IEnumerable<string> Items(string kind) => project.Descendants(kind).Select(e => (string?)e.Attribute("Include")).OfType<string>();
        string Property(string name) => string.Concat(project.Descendants(name).Select(e => e.Value));

        string configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;   // bin/<Configuration>/net10.0
        var files = Directory.EnumerateFiles(dir, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Concat(Items("Compile").Select(f => Path.GetFullPath(Path.Combine(dir, f))))
            .Append(Path.Combine(dir, "obj", configuration, "net10.0", library + ".GlobalUsings.g.cs"))
            .ToList();
        var defines = Property("DefineConstants").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(d => !d.StartsWith("$(", StringComparison.Ordinal))
            .Concat(["TRACE", "NET", "NET10_0", "NET10_0_OR_GREATER", "NET9_0_OR_GREATER", "NET8_0_OR_GREATER", "NETCOREAPP"])
            .Concat(configuration == "Debug" ? ["DEBUG"] : []).ToArray();
        var parse = new CSharpParseOptions(LanguageVersion.Latest, preprocessorSymbols: defines);
        var trees = files.Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, f)).ToList();

        var (refPack, generators) = FrameworkPack();
        var projectRefs = Items("ProjectReference").Select(p => Path.GetFileNameWithoutExtension(p)).ToHashSet(StringComparer.Ordinal);
        var references = Directory.EnumerateFiles(refPack, "*.dll")
            .Concat(Directory.EnumerateFiles(AppContext.BaseDirectory, "*.dll").Where(f =>
            {
                string name = Path.GetFileNameWithoutExtension(f);
                return name.StartsWith("Peft.", StringComparison.Ordinal) ? projectRefs.Contains(name) : !IsFrameworkAssembly(name, refPack);
            }))
            .Where(IsAssembly)
            .Select(f => MetadataReference.CreateFromFile(f)).ToList();
        var options = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable,
            allowUnsafe: Property("AllowUnsafeBlocks") == "true");
        Compilation compilation = CSharpCompilation.Create(library, trees, references, options);
        CSharpGeneratorDriver.Create(generators).RunGeneratorsAndUpdateCompilation(compilation, out compilation, out _);
        return compilation;
    }

    // The reference pack the SDK compiles against (packs/Microsoft.NETCore.App.Ref/<newest>/ref/net10.0) and its source generators.
    private static (string RefDir, ISourceGenerator[] Generators) FrameworkPack()
    {
        var root = new DirectoryInfo(Path.GetDirectoryName(typeof(object).Assembly.Location)!).Parent!.Parent!.Parent!.FullName;
        var pack = Directory.GetDirectories(Path.Combine(root, "packs", "Microsoft.NETCore.App.Ref"))
            .OrderBy(d => Version.TryParse(Path.GetFileName(d).Split('-')[0], out var v) ? v : new Version()).Last();
        var loader = new Loader();
        var generators = Directory.EnumerateFiles(Path.Combine(pack, "analyzers", "dotnet", "cs"), "*.dll")
            .SelectMany(f => new AnalyzerFileReference(f, loader).GetGenerators(LanguageNames.CSharp)).ToArray();
        return (Path.Combine(pack, "ref", "net10.0"), generators);
    }

    private static bool IsFrameworkAssembly(string name, string refPack) => File.Exists(Path.Combine(refPack, name + ".dll"));

    private static bool IsAssembly(string path)
    {
        try
        {
            AssemblyName.GetAssemblyName(path);
            return true;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }

    private sealed class Loader : IAnalyzerAssemblyLoader
    {
        public void AddDependencyLocation(string fullPath)
        {
        }

        public Assembly LoadFromPath(string fullPath) => Assembly.LoadFrom(fullPath);
    }
}
