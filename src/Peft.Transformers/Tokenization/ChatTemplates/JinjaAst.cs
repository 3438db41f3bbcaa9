namespace Peft.Transformers.Tokenization.ChatTemplates;

// Expressions
internal abstract record Expr(int Line);
internal sealed record Literal(object? Value, int Line) : Expr(Line);
internal sealed record Name(string Id, int Line) : Expr(Line);
internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);
internal sealed record TupleExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);
internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items, int Line) : Expr(Line);
internal sealed record GetAttr(Expr Target, string Attr, int Line) : Expr(Line);
internal sealed record GetItem(Expr Target, Expr Index, int Line) : Expr(Line);
internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);
internal sealed record Call(Expr Callee, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);
internal sealed record FilterExpr(Expr Target, string Filter, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line);
internal sealed record TestExpr(Expr Target, string Test, bool Negated, IReadOnlyList<Expr> Args, int Line) : Expr(Line);
internal sealed record Unary(string Op, Expr Operand, int Line) : Expr(Line);
internal sealed record Binary(string Op, Expr Left, Expr Right, int Line) : Expr(Line);
internal sealed record Conditional(Expr Test, Expr Then, Expr? Else, int Line) : Expr(Line);

// Statements
internal abstract record Node(int Line);
internal sealed record TextNode(string Text, int Line) : Node(Line);
internal sealed record OutputNode(Expr Value, int Line) : Node(Line);
internal sealed record IfNode(IReadOnlyList<(Expr Test, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node>? Else, int Line) : Node(Line);
internal sealed record ForNode(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else, int Line) : Node(Line);
internal sealed record SetNode(IReadOnlyList<string> Targets, string? Attribute, Expr? Value, IReadOnlyList<Node>? Body, int Line) : Node(Line);
internal sealed record MacroNode(string MacroName, IReadOnlyList<(string Name, Expr? Default)> Params, IReadOnlyList<Node> Body, int Line) : Node(Line);
internal sealed record LoopControlNode(bool IsBreak, int Line) : Node(Line);
internal sealed record BlockNode(IReadOnlyList<Node> Body, int Line) : Node(Line);
