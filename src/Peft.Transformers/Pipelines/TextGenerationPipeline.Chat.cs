using System.Text.Json.Nodes;
using Peft.Transformers.Generation;
using static TorchSharp.torch;

namespace Peft.Transformers;

/// <summary>One generated chat: the input conversation with the reply appended (HF's <c>generated_text</c> list).</summary>
/// <param name="Conversation">The messages, ending with the assistant's reply (or the continued final message).</param>
/// <param name="Reply">The generated text alone.</param>
/// <param name="GeneratedTokenIds">Prompt and generated ids.</param>
public sealed record ChatGenerationResult(JsonArray Conversation, string Reply, IReadOnlyList<int> GeneratedTokenIds);

public sealed partial class TextGenerationPipeline
{
    /// <summary>
    /// Chat input, as HF's text-generation pipeline takes a list of message dicts: renders the tokenizer's chat template
    /// (<see cref="PreTrainedTokenizer.ApplyChatTemplate(JsonArray, bool, JsonArray?, IReadOnlyDictionary{string, JsonNode?}?, bool)"/>
    /// with the generation prompt, or continuing the final message), encodes it without special tokens, generates, and
    /// returns per sequence the conversation with <c>{"role": "assistant", "content": reply}</c> appended, or with the
    /// reply added to the final message's content when continuing it.
    /// </summary>
    /// <param name="messages">The conversation (each message needs "role" and "content").</param>
    /// <param name="config">Decoding settings.</param>
    /// <param name="continueFinalMessage">Continue the last message (HF default: when it is the assistant's).</param>
    /// <param name="cancellationToken">Checked before each decoding step.</param>
    /// <exception cref="InvalidOperationException">The pipeline's tokenizer is not a <see cref="PreTrainedTokenizer"/> with a chat template.</exception>
    public IReadOnlyList<ChatGenerationResult> RunChat(JsonArray messages, GenerationConfig? config = null, bool? continueFinalMessage = null,
        CancellationToken cancellationToken = default)
    {
        var (ids, cont) = EncodeChat(messages, continueFinalMessage);
        return Generate(ids, config ?? new GenerationConfig(), cancellationToken)
            .Select(r => new ChatGenerationResult(AppendReply(messages, r.GeneratedText!, cont), r.GeneratedText!, r.GeneratedTokenIds!))
            .ToList();
    }

    /// <summary>Typed form of <see cref="RunChat(JsonArray, GenerationConfig?, bool?, CancellationToken)"/>.</summary>
    public IReadOnlyList<ChatGenerationResult> RunChat(IEnumerable<ChatMessage> messages, GenerationConfig? config = null, bool? continueFinalMessage = null,
        CancellationToken cancellationToken = default) =>
        RunChat(ToJson(messages), config, continueFinalMessage, cancellationToken);

    /// <summary>Streams the reply to a conversation piece by piece (what <see cref="RunChat(JsonArray, GenerationConfig?, bool?, CancellationToken)"/> appends).</summary>
    public IEnumerable<string> StreamChat(JsonArray messages, GenerationConfig? config = null, bool? continueFinalMessage = null,
        CancellationToken cancellationToken = default)
    {
        var (promptIds, _) = EncodeChat(messages, continueFinalMessage);
        var ids = tensor(promptIds.Select(x => (long)x).ToArray(), [1, promptIds.Count]);
        ids.DetachFromDisposeScope();
        return StreamCore(ids, config ?? new GenerationConfig(), cancellationToken);
    }

    private (IReadOnlyList<int> Ids, bool Continue) EncodeChat(JsonArray messages, bool? continueFinalMessage)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0) throw new ArgumentException("chat input needs at least one message", nameof(messages));
        foreach (var m in messages)
            if (m is not JsonObject o || o["role"] is null || !o.ContainsKey("content"))
                throw new ArgumentException("When passing chat dicts as input, each dict must have a 'role' and 'content' key.", nameof(messages));
        var tok = (Tokenizer as PipelineTokenizer)?.Tokenizer
            ?? throw new InvalidOperationException("chat input needs the pipeline's tokenizer to be a PreTrainedTokenizer (with a chat template).");
        bool cont = continueFinalMessage ?? messages[^1]!["role"]!.GetValue<string>() == "assistant";
        var text = tok.ApplyChatTemplate(messages, addGenerationPrompt: !cont, continueFinalMessage: cont);
        var ids = tok.Encode(text, addSpecialTokens: false);
        if (ids.Count == 0) throw new ArgumentException("the rendered chat encodes to no tokens", nameof(messages));
        return (ids, cont);
    }

    private static JsonArray AppendReply(JsonArray messages, string reply, bool continued)
    {
        var conversation = (JsonArray)messages.DeepClone();
        if (continued)
        {
            var last = conversation[^1]!.AsObject();
            last["content"] = last["content"]!.GetValue<string>() + reply;
        }
        else conversation.Add(new JsonObject { ["role"] = "assistant", ["content"] = reply });
        return conversation;
    }

    private static JsonArray ToJson(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return new JsonArray(messages.Select(m => (JsonNode)m.ToJson()).ToArray());
    }
}
