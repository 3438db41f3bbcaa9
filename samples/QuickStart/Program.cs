// Peft.NET quick start. Grows with the library: today it builds a tiny network, saves it as safetensors and
// loads it back; later issues turn it into the LoRA fine-tuning demo (load a model, tokenize, train, save).
using Peft.Core.Safetensors;
using TorchSharp;
using static TorchSharp.torch;

var dir = Path.Combine(Path.GetTempPath(), "peft-quickstart");
Directory.CreateDirectory(dir);

using var scope = NewDisposeScope();
var mlp = nn.Sequential(("fc1", nn.Linear(16, 32)), ("act", nn.GELU()), ("fc2", nn.Linear(32, 4)));
var x = randn(2, 16, generator: new Generator(0));
var y = mlp.forward(x);

var path = Path.Combine(dir, "model.safetensors");
SafetensorsWriter.Save(path, mlp.state_dict(), new Dictionary<string, string> { ["format"] = "pt" });
using var file = SafetensorsFile.Open(path);
Console.WriteLine($"saved {file.Tensors.Count} tensors to {path}:");
foreach (var t in file.Tensors)
{
    Console.WriteLine($"  {t.Name,-12} {t.Dtype} [{string.Join(", ", t.Shape)}]");
}
Console.WriteLine($"output [{string.Join(", ", y.shape)}], sum {y.sum().item<float>():F4}");
