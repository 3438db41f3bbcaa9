using Peft.Transformers;
using TrainerKillChild;

// Usage: Peft.Trainer.KillChild <outputDir> <maxSteps>
// Trains TinyTrainingSetup, resuming from the newest checkpoint when one exists; at the end writes
// trainer_state.json and the adapter to <outputDir>/final, then prints DONE.
if (args.Length != 2 || !int.TryParse(args[1], out int maxSteps))
{
    Console.Error.WriteLine("usage: Peft.Trainer.KillChild <outputDir> <maxSteps>");
    return 2;
}
string outputDir = args[0];
TorchSharp.torch.set_num_threads(1); // a test tool on a shared CI machine: one libtorch thread keeps steps short and kills spread over steps and saves
using var model = TinyTrainingSetup.Model();
var trainer = new Trainer(model, TinyTrainingSetup.Args(outputDir, maxSteps), trainDataset: TinyTrainingSetup.Rows(), dataCollator: new DefaultDataCollator());
string? resume = CheckpointFolder.Last(outputDir) is null ? null : "last";
Console.WriteLine($"START {resume ?? "fresh"}");
trainer.Train(resumeFromCheckpoint: resume);
trainer.SaveState();
trainer.SaveModel(Path.Combine(outputDir, "final"));
Console.WriteLine("DONE");
return 0;
