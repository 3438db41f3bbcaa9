// Finds every place in a source folder where a TorchSharp.Scalar is made implicitly from a number (a conversion, or a
// Tensor operator with a primitive operand, which converts inside TorchSharp): such a Scalar is unreachable once its
// handle is read, so a GC during the native call may finalize it while libtorch reads it. src/ must have none; use
// Peft.Core.Torch.HeldScalars.Of(x) (see docs/ARCHITECTURE.md). Usage: eng/scalar-scan.sh [rewrite]
//   args: <source folder> <folder with TorchSharp.dll and the referenced assemblies> [rewrite]
// "rewrite" wraps each site in global::Peft.Core.Torch.HeldScalars.Of(...) (then shorten to HeldScalars.Of and build).
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;
// args: srcDir binDir
var src = args[0]; var bin = args[1];
var trees = Directory.EnumerateFiles(src, "*.cs", SearchOption.AllDirectories)
    .Where(f => !f.Contains("/obj/") && !f.Contains("/bin/"))
    .Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), new CSharpParseOptions(LanguageVersion.Preview), f)).ToList();
trees.Add(CSharpSyntaxTree.ParseText("global using System; global using System.IO; global using System.Linq; global using System.Collections.Generic; global using System.Threading; global using System.Threading.Tasks; global using System.Net.Http;", new CSharpParseOptions(LanguageVersion.Preview), "globals.cs"));
var refs = Directory.EnumerateFiles(Path.GetDirectoryName(typeof(object).Assembly.Location)!, "*.dll")
    .Concat(Directory.EnumerateFiles(bin, "*.dll").Where(f => !Path.GetFileName(f).StartsWith(Path.GetFileName(src))))
    .Where(f => { try { System.Reflection.AssemblyName.GetAssemblyName(f); return true; } catch { return false; } })
    .GroupBy(Path.GetFileName).Select(g => MetadataReference.CreateFromFile(g.First())).ToList();
var comp = CSharpCompilation.Create("x", trees, refs, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
var errs = comp.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Take(5).ToList();
foreach (var e in errs) Console.Error.WriteLine("compile: " + e);
int conv = 0, ops = 0;
bool rewrite = args.Length > 2 && args[2] == "rewrite";
var edits = new Dictionary<string, List<Microsoft.CodeAnalysis.Text.TextSpan>>();
void Add(SyntaxTree t, Microsoft.CodeAnalysis.Text.TextSpan sp){ if(!edits.TryGetValue(t.FilePath, out var l)) edits[t.FilePath]=l=new(); l.Add(sp);} 
foreach (var t in trees)
{
    var m = comp.GetSemanticModel(t);
    foreach (var node in t.GetRoot().DescendantNodes().OfType<ExpressionSyntax>())
    {
        var c = m.GetConversion(node);
        if (c.IsUserDefined && c.MethodSymbol?.ContainingType?.ToDisplayString() == "TorchSharp.Scalar")
        { conv++; Add(t, node.Span); Console.WriteLine($"conv {t.FilePath.Replace(src, "")}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {node}"); }
        if (node is BinaryExpressionSyntax b && m.GetSymbolInfo(b).Symbol is IMethodSymbol ms && ms.ContainingType?.ToDisplayString() == "TorchSharp.torch.Tensor"
            && ms.Parameters.Any(p => p.Type.SpecialType is SpecialType.System_Double or SpecialType.System_Single or SpecialType.System_Int32 or SpecialType.System_Int64))
        { ops++; var prim = ms.Parameters[0].Type.SpecialType is SpecialType.System_Double or SpecialType.System_Single or SpecialType.System_Int32 or SpecialType.System_Int64 ? b.Left : b.Right; Add(t, prim.Span); Console.WriteLine($"op   {t.FilePath.Replace(src, "")}:{node.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {b}"); }
    }
}
if (rewrite) foreach (var (file, spans) in edits)
{
    var text = File.ReadAllText(file);
    var ordered = spans.Distinct().OrderByDescending(x => x.Start).ToList();
    var kept = new List<Microsoft.CodeAnalysis.Text.TextSpan>();
    foreach (var sp in ordered) if (!kept.Any(k => k.Contains(sp) || sp.Contains(k))) kept.Add(sp);
    foreach (var sp in kept.OrderByDescending(x => x.Start))
        text = text[..sp.Start] + "global::Peft.Core.Torch.HeldScalars.Of(" + text[sp.Start..sp.End] + ")" + text[sp.End..];
    File.WriteAllText(file, text);
}
Console.WriteLine($"# implicit Scalar conversions: {conv}; Tensor operators with a primitive operand: {ops}");
return rewrite || conv + ops == 0 ? 0 : 1;
