"""Two of the Bicep compiler's rules, checked on the tree-sitter parse (no Bicep CLI here).

`check(source)` gives the errors the compiler would report for:

1. Where a for-expression may stand. Rule from Azure/bicep
   src/Bicep.Core/Emit/ForSyntaxValidatorVisitor.cs: BCP138 (loop not allowed here), BCP142 (a
   property loop inside a property loop), BCP143 (a property loop under a computed key), BCP160
   (a resource declared inside a loop).
2. Values that must be known when the deployment starts ("deploy-time constants"). Rule from
   src/Bicep.Core/TypeSystem/DeployTimeConstantValidator.cs and the visitors next to it
   (DeployTimeConstantContainerVisitor.cs, DeployTimeConstantDirectViolationVisitor.cs,
   DeployTimeConstantIndirectViolationVisitor.cs), Providers/ResourceTypeResolver.cs and
   Providers/Az/AzResourceTypeProvider.cs: BCP120 (a resource's or module's property such as
   name, scope, parent, location, tags), BCP177 (an `if` condition), BCP178 (a for-expression's
   array), BCP181 (arguments of reference()/list*()), BCP182 (the body of a variable's loop),
   BCP341 (a user-defined function's body); and BCP066 for reference()/list*() called right in an
   if-condition, where the compiler refuses the call before it gets to BCP177
   (src/Bicep.Core/Semantics/NameBindingVisitor.cs).

Our approximations, where the compiler uses resource types we do not have: every property of a
resource other than id, name, type and apiVersion counts as known only after deployment; of a
module, outputs, params and identity do; only the top-level properties listed below count as
needing a constant (the type library may mark a few nested ones too); an index is a known
property name only when it evaluates to string literals (see `strings`). The checker expects
source that parses cleanly (tests/test_bicep.py holds infra/ to that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import tree_sitter
import tree_sitter_bicep

Node = Any
Symbol = tuple[str, Node]  # ('resource' | 'module' | 'variable', its declaration)


@dataclass(frozen=True, order=True)
class Violation:
    line: int  # 1-based
    column: int  # 0-based, in bytes (the compiler counts characters: the same for ASCII)
    code: str
    message: str


# --- What the compiler treats as constant (AzResourceTypeProvider.cs, LanguageConstants.cs) -----

# Top-level resource properties that need a deploy-time constant: name (flagged so in the type
# library), scope and parent (system properties), and the "write-only deploy-time constant" list.
RESOURCE_CONSTANT_PROPERTIES = frozenset({
    "name", "scope", "parent", "location", "kind", "subscriptionid", "resourcegroup", "managedby",
    "extendedlocation", "zones", "placement", "plan", "sku", "identity", "managedbyextended",
    "tags", "asserts",
})  # fmt: skip
MODULE_CONSTANT_PROPERTIES = frozenset({"name", "scope", "identity"})
# Identity properties: a whole resource may stand here unless it is an inlined `existing` one.
IDENTIFIER_PROPERTIES = ("name", "scope", "parent")
# Readable while the deployment starts: a resource's id, name, type and apiVersion (and its
# write-only scope/parent); a module's name and scope. Module params, outputs, identity are not.
RESOURCE_READABLE = frozenset({"id", "name", "type", "apiversion", "scope", "parent"})
MODULE_UNREADABLE = frozenset({"outputs", "params", "identity", "dependson", "extensionconfigs"})
# Functions evaluated by the deployment engine (flag RequiresInlining: AzNamespaceType.cs,
# AzResourceTypeProvider.cs, ThisNamespaceType.cs); list* on a resource too.
LIST_FUNCTION = re.compile(r"^list[a-zA-Z]*$")
RUNTIME_FUNCTIONS = frozenset(
    {"reference", "toLogicalZone", "toLogicalZones", "toPhysicalZone", "toPhysicalZones"}
)
THIS_FUNCTIONS = frozenset({"exists", "existingResource"})

DECLARATIONS = ("resource_declaration", "module_declaration", "variable_declaration",
                "output_declaration")  # fmt: skip
# Between a resource/module and a property loop only object and array literals may stand (a
# call, an operator or a parenthesis stops it); loops, conditions and nested resources don't count.
PROPERTY_LOOP_PATH = frozenset(
    {"object", "object_property", "array", "for_statement", "if_statement", "resource_declaration"}
)


@cache
def bicep_parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def check(source: str) -> list[Violation]:
    root, original_column = _parse(source)
    found = set(_loop_placement(root)) | set(_Constants(root).violations())
    return sorted({replace(v, column=original_column(v.line, v.column)) for v in found})


# tree-sitter-bicep applies a postfix (`.x`, `[i]`, `(...)`) that follows an operator expression
# to the whole of it: `c ? a : b.x` parses as `(c ? a : b).x`, `a == b.x` as `(a == b).x`. Bicep
# binds the postfix to the last operand; a parenthesis would give a parenthesized_expression.
POSTFIX = {"member_expression": "object", "subscript_expression": "object",
           "call_expression": "function"}  # fmt: skip
OPERATORS = {"binary_expression": "right", "ternary_expression": "alternative",
             "unary_expression": "argument", "lambda_expression": None}  # fmt: skip


def _parse(source: str):
    """Parse, adding the parentheses that make tree-sitter group postfixes as Bicep does. Gives
    the root and a function mapping a (line, column) of the result back to the source."""
    data = source.encode()
    added: list[int] = []  # byte offsets of the added parentheses in the final text
    for _ in range(100):
        root = bicep_parser().parse(data).root_node
        points = set()
        for node in walk(root):
            base = node.child_by_field_name(POSTFIX[node.type]) if node.type in POSTFIX else None
            if base is None or base.type not in OPERATORS:
                continue
            top = node  # the outermost postfix of the chain
            while (
                top.parent is not None
                and top.parent.type in POSTFIX
                and (top.parent.child_by_field_name(POSTFIX[top.parent.type]) == top)
            ):
                top = top.parent
            operand = base
            while operand.type in OPERATORS and operand.named_child_count:
                field = OPERATORS[operand.type]
                operand = (
                    operand.child_by_field_name(field) if field else operand.named_children[-1]
                )
            points |= {(operand.start_byte, b"("), (top.end_byte, b")")}
        if not points:
            break
        for offset, paren in sorted(points, reverse=True):
            data = data[:offset] + paren + data[offset:]
            added = [p + (p >= offset) for p in added] + [offset]
    starts = [data.rfind(b"\n", 0, p) + 1 for p in added]
    rows = [data.count(b"\n", 0, p) + 1 for p in added]
    columns = [p - start for p, start in zip(added, starts, strict=True)]

    def original_column(line: int, column: int) -> int:
        return column - sum(r == line and c < column for r, c in zip(rows, columns, strict=True))

    return root, original_column


def _violation(code: str, node: Node, message: str) -> Violation:
    if node.type == "for_statement":  # the compiler points at the `for` keyword
        node = next((c for c in node.children if c.type == "for"), node)
    return Violation(node.start_point[0] + 1, node.start_point[1], code, message)


# --- Small syntax helpers -----------------------------------------------------------------------
# walk, text and string_value are test_bicep.py's; repeated here because importing that module
# loads the alerts package (about a second) and these checks should stay quick on their own.


def walk(node: Node):
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node) -> str:
    return node.text.decode()


def string_value(node: Node | None) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node is None or node.type != "string":
        return None
    parts = [child for child in node.named_children if child.type != "escape_sequence"]
    if any(part.type != "string_content" for part in parts):
        return None
    return text(node)[1:-1]


def _value(declaration: Node) -> Node | None:
    """The expression after `=` in a declaration."""
    children = declaration.children
    kinds = [child.type for child in children]
    return children[kinds.index("=") + 1] if "=" in kinds[:-1] else None


def _name(declaration: Node) -> str:
    named = declaration.child_by_field_name("name")
    return text(named or next(c for c in declaration.named_children if c.type == "identifier"))


def _is_existing(resource: Node) -> bool:
    return any(child.type == "existing" for child in resource.children)


def _is_collection(declaration: Node) -> bool:
    value = _value(declaration)
    return value is not None and value.type == "for_statement"


def _loop_names(loop: Node) -> set[str]:
    names = {text(c) for c in loop.children if c.type in ("loop_variable", "loop_enumerator")}
    parameters = next((c for c in loop.children if c.type == "for_loop_parameters"), None)
    if parameters is not None:
        names |= {text(c) for c in parameters.named_children}
    initializer = loop.child_by_field_name("initializer")
    return names | ({text(initializer)} if initializer is not None else set())


def _loop_array(loop: Node) -> Node:
    kinds = [child.type for child in loop.children]
    return loop.children[kinds.index("in") + 1]


def _lambda_parts(node: Node) -> tuple[set[str], list[Node]]:
    """(parameter names, body nodes) of `x => ...` or `(x, y) => ...`."""
    kinds = [child.type for child in node.children]
    split = kinds.index("=>") if "=>" in kinds else len(kinds)
    names = {text(n) for c in node.children[:split] for n in walk(c) if n.type == "identifier"}
    return names, [c for c in node.children[split + 1 :] if c.is_named]


def _unwrap(node: Node) -> Node:
    """`x!` (a non-null assertion, which tree-sitter-bicep parses as nullable_type) -> x."""
    while node is not None and node.type == "nullable_type" and node.named_child_count:
        node = node.named_children[0]
    return node


def _parent(node: Node) -> Node | None:
    parent = node.parent
    while parent is not None and parent.type == "nullable_type":
        parent = parent.parent
    return parent


def _key(prop: Node) -> str | None:
    """An object property's key, or None when it is computed (`'${x}': ...`)."""
    key = prop.named_children[0] if prop.named_child_count else None
    return text(key) if key is not None and key.type == "identifier" else string_value(key)


def _prop_value(prop: Node) -> Node | None:
    values = [c for c in prop.named_children if c.type != "comment"]
    return values[-1] if values else None


def _first(node: Node) -> Node | None:
    return node.named_children[0] if node is not None and node.named_child_count else None


def _nested_resource(prop: Node) -> Node | None:
    """The resource declared by a body entry, when tree-sitter wraps one as a property."""
    first = _first(prop) if prop.type == "object_property" else None
    return first if first is not None and first.type == "resource_declaration" else None


def _body(declaration: Node, bound: frozenset[str]) -> tuple[Node | None, frozenset[str]]:
    """A resource's or module's body object, seen through its loop and condition, with the
    loop's variables added to the names bound there."""
    node = _value(declaration)
    while node is not None and node.type in ("for_statement", "if_statement"):
        if node.type == "for_statement":
            bound |= _loop_names(node)
            node = node.child_by_field_name("body")
        else:
            node = node.named_children[-1] if node.named_child_count else None
    return (node if node is not None and node.type == "object" else None), bound


def _properties(body: Node | None) -> dict[str, Node]:
    """Lower-cased key -> object_property, for the plain keys of a body."""
    found = {}
    for prop in body.named_children if body is not None else ():
        if prop.type == "object_property" and _nested_resource(prop) is None:
            key = _key(prop)
            if key is not None:
                found[key.lower()] = prop
    return found


def _nested_resources(body: Node | None) -> list[Node]:
    entries = body.named_children if body is not None else ()
    return [nested for nested in map(_nested_resource, entries) if nested is not None]


# --- Rule 1: where a for-expression may stand (ForSyntaxValidatorVisitor.cs) --------------------


def _loop_placement(root: Node) -> list[Violation]:
    found = []
    kinds: dict[Node, str] = {}  # each for_statement -> 'top' | 'property' | 'misplaced'
    for node in walk(root):  # pre-order: outer loops are classified before inner ones
        if node.type == "resource_declaration" and any(
            a.type == "for_statement" for a in _ancestors(node)
        ):
            found.append(_violation("BCP160", node, "a resource cannot be declared inside a loop"))
        value = _prop_value(node) if node.type == "object_property" else None
        if value is not None and value.type == "for_statement" and _key(node) is None:
            found.append(
                _violation("BCP143", node.named_children[0], "a loop under a computed key")
            )
        if node.type != "for_statement":
            continue
        declaration = next((a for a in _ancestors(node) if a.type in DECLARATIONS), None)
        kind = _loop_kind(node, declaration)
        kinds[node] = kind
        if kind == "misplaced":
            found.append(
                _violation(
                    "BCP138",
                    node,
                    "a for-expression may only be the value of a resource, module, variable or "
                    "output, or of a property of a resource or module reached through object and "
                    "array literals (not inside a function call, an operator or a parenthesis)",
                )
            )
        elif kind == "property":
            depth = sum(kinds.get(a) == "property" for a in _ancestors(node, declaration))
            if depth >= 1:  # MaximumNestedPropertyLoopCount = 1
                found.append(_violation("BCP142", node, "a property loop inside a property loop"))
    return found


def _ancestors(node: Node, stop: Node | None = None):
    parent = node.parent
    while parent is not None and parent != stop:
        yield parent
        parent = parent.parent


def _loop_kind(loop: Node, declaration: Node | None) -> str:
    if declaration is None:  # a parameter's default, a decorator, a function, metadata...
        return "misplaced"
    if loop.parent == declaration:
        return "top"
    if declaration.type in ("variable_declaration", "output_declaration"):
        return "misplaced"  # variables and outputs: only the whole value may be a loop
    parent = loop.parent
    if parent.type != "object_property" or _prop_value(parent) != loop:
        return "misplaced"
    if any(a.type not in PROPERTY_LOOP_PATH for a in _ancestors(loop, declaration)):
        return "misplaced"
    return "property"


# --- Rule 2: deploy-time constants (DeployTimeConstant*.cs) -------------------------------------


class _Constants:
    def __init__(self, root: Node) -> None:
        self.root = root
        self.symbols: dict[str, Symbol] = {}
        self.functions: set[str] = set()
        for node in root.named_children:
            if node.type == "user_defined_function":
                self.functions.add(_name(node))
            kind = node.type.removesuffix("_declaration")
            if kind in ("resource", "module", "variable"):
                self.symbols[_name(node)] = (kind, node)
        self._variable_chains: dict[str, tuple[str, ...] | None] = {}
        self._inlined: dict[Node, frozenset[str]] = {}

    # Names ----------------------------------------------------------------------------------

    def resolve(self, node: Node, bound: frozenset[str]) -> Symbol | None:
        """The declared resource, module or variable an identifier (or `a::b`) names."""
        node = _unwrap(node)
        if node is None:
            return None
        if node.type == "identifier":
            name = text(node)
            return None if name in bound else self.symbols.get(name)
        if node.type == "resource_expression":
            owner = self.resolve(node.child_by_field_name("object"), bound)
            child = node.child_by_field_name("resource")
            if owner is None or owner[0] != "resource" or child is None:
                return None
            body, _ = _body(owner[1], frozenset())
            for nested in _nested_resources(body):
                if _name(nested) == text(child):
                    return ("resource", nested)
        return None

    def accessed(self, node: Node, bound: frozenset[str]) -> Symbol | None:
        """The resource or module whose property `node.x` reads: a single one, or an element of
        a collection indexed by a non-string (ResourceTypeResolver.cs)."""
        node = _unwrap(node)
        if node.type == "subscript_expression":
            if self.strings(node.child_by_field_name("index"), bound) is not None:
                return None
            symbol = self.resolve(node.child_by_field_name("object"), bound)
            return (
                symbol if symbol and symbol[0] != "variable" and _is_collection(symbol[1]) else None
            )
        symbol = self.resolve(node, bound)
        return (
            symbol if symbol and symbol[0] != "variable" and not _is_collection(symbol[1]) else None
        )

    def strings(self, node: Node | None, bound: frozenset[str], depth: int = 0) -> set[str] | None:
        """The string values an index expression can take when its type is a string literal
        (or a union of them) to the compiler: 'id', '${x}' with x = 'id', c ? 'a' : 'b', a
        variable holding one, an element of a literal array. None when not known."""
        node = _unwrap(node)
        kind = node.type if node is not None and depth < 20 else None
        if kind == "string":
            values = {""}
            for part in node.named_children:
                if part.type == "interpolation":
                    inner = self.strings(_first(part), bound, depth + 1)
                    if inner is None:
                        return None
                    values = {v + i for v in values for i in inner}
                elif part.type == "string_content":
                    values = {v + text(part) for v in values}
                else:  # an escape sequence: leave it to the compiler
                    return None
            return values
        if kind == "parenthesized_expression":
            return self.strings(_first(node), bound, depth + 1)
        if kind == "ternary_expression":
            parts = [self.strings(node.child_by_field_name(f), bound, depth + 1)
                     for f in ("consequence", "alternative")]  # fmt: skip
            return None if None in parts else parts[0] | parts[1]
        if kind == "identifier":
            symbol = self.resolve(node, bound)
            if symbol and symbol[0] == "variable":
                return self.strings(_value(symbol[1]), frozenset(), depth + 1)
            return None
        items = None
        if kind == "subscript_expression":
            index = node.child_by_field_name("index")
            items = self._array_items(node.child_by_field_name("object"), bound, depth)
            if items is not None and index is not None and index.type == "number":
                items = items[int(text(index)) : int(text(index)) + 1]
        elif kind == "call_expression" and text(node.child_by_field_name("function")) in (
            "first", "last"
        ):  # fmt: skip
            arguments = node.child_by_field_name("arguments")
            items = self._array_items(_first(arguments), bound, depth)
            if items:
                items = (
                    items[:1]
                    if text(node.child_by_field_name("function")) == "first"
                    else items[-1:]
                )
        if not items:
            return None
        values = [self.strings(item, bound, depth + 1) for item in items]
        return None if None in values else set().union(*values)

    def _array_items(self, node: Node | None, bound: frozenset[str], depth: int) -> list | None:
        node = _unwrap(node)
        if node is not None and node.type == "identifier":
            symbol = self.resolve(node, bound)
            node = _value(symbol[1]) if symbol and symbol[0] == "variable" else None
            bound = frozenset()
        if node is None or node.type != "array" or depth > 20:
            return None
        return [c for c in node.named_children if c.type != "comment"]

    def unreadable(self, symbol: Symbol, prop: str) -> bool:
        kind, declaration = symbol
        if kind == "module":
            return prop.lower() in MODULE_UNREADABLE
        return prop.lower() not in RESOURCE_READABLE - self.inlined(declaration)

    def inlined(self, resource: Node) -> frozenset[str]:
        """Properties that an `existing` resource loses from the readable set when its name,
        scope or parent is itself a run-time value: its id and those (ResourceTypeResolver.cs,
        Emit/InlineDependencyVisitor.cs). Empty for every other resource."""
        if not _is_existing(resource):
            return frozenset()
        if resource in self._inlined:
            return self._inlined[resource]
        self._inlined[resource] = frozenset()  # a cycle counts as constant
        body, bound = _body(resource, frozenset())
        props = _properties(body)
        runtime = {
            key
            for key in IDENTIFIER_PROPERTIES
            if key in props and any(self.findings(props[key], bound, identity=key != "name"))
        }
        # Inlined as well: one nested in, scoped to or the child of an inlined existing resource.
        related = [a for a in _ancestors(resource) if a.type == "resource_declaration"][:1]
        for key in ("parent", "scope"):
            symbol = self.resolve(_prop_value(props[key]), bound) if key in props else None
            related += [symbol[1]] if symbol and symbol[0] == "resource" else []
        inlined = runtime or any(self.inlined(other) for other in related)
        self._inlined[resource] = frozenset({"id", *runtime}) if inlined else frozenset()
        return self._inlined[resource]

    # Finding run-time values (the direct and indirect violation visitors) -------------------

    def scan(self, node: Node, bound: frozenset[str], identity: bool):
        """Yield ('value', node, what) for each value known only at run time, and
        ('variable', node, name) for each variable read, in source order."""
        kind = node.type if node is not None else "comment"
        if kind in ("comment", "type", "resource_declaration", "decorators"):
            return
        if kind in ("identifier", "resource_expression"):
            yield from self._whole(node, self.accessed(node, bound), identity)
            symbol = self.resolve(node, bound)
            if symbol and symbol[0] == "variable":
                yield ("variable", node, text(node))
            return
        if kind == "member_expression":
            base, prop = node.child_by_field_name("object"), node.child_by_field_name("property")
            symbol = self.accessed(base, bound)
            if symbol and prop is not None and self.unreadable(symbol, text(prop)):
                yield ("value", node, f"{text(node)} is read from the deployed {symbol[0]}")
            yield from self.scan(base, bound, identity)
            return
        if kind == "subscript_expression":
            base, index = node.child_by_field_name("object"), node.child_by_field_name("index")
            symbol = self.accessed(base, bound)
            keys = self.strings(index, bound)
            if symbol and (keys is None or any(self.unreadable(symbol, k) for k in keys)):
                yield ("value", node, f"{text(node)} is read from the deployed {symbol[0]}")
            yield from self._whole(node, self.accessed(node, bound), identity)
            yield from self.scan(base, bound, identity)
            yield from self.scan(index, bound, identity)
            return
        if kind == "call_expression":
            function = node.child_by_field_name("function")
            name = self.runtime_function(function, bound)
            if name is not None:
                yield ("value", node, f"{name}() runs during the deployment")
            if function.type == "member_expression":
                yield from self.scan(function.child_by_field_name("object"), bound, identity)
            arguments = node.child_by_field_name("arguments")
            if text(function).split(".")[-1] == "nameof" or arguments is None:
                return  # nameof() reads only the name of its argument
            for argument in arguments.named_children:
                yield from self.scan(argument, bound, identity)
            return
        if kind == "lambda_expression":
            names, body = _lambda_parts(node)
            for part in body:
                yield from self.scan(part, bound | names, identity)
            return
        if kind == "for_statement":
            yield from self.scan(_loop_array(node), bound, identity)
            yield from self.scan(
                node.child_by_field_name("body"), bound | _loop_names(node), identity
            )
            return
        if kind == "object_property":
            key = _first(node)
            if key is not None and key.type == "string":
                yield from self.scan(key, bound, identity)
            if node.named_child_count > 1:
                yield from self.scan(_prop_value(node), bound, identity)
            return
        for child in node.named_children:
            yield from self.scan(child, bound, identity)

    def _whole(self, node: Node, symbol: Symbol | None, identity: bool):
        """A resource or module (or an element of a collection) used whole, not through a
        property: `name: storage`, `tags: vms[0]`."""
        if symbol is None or _is_access(node):
            return
        # In scope/parent a whole resource is the point, unless its own identity is run-time.
        if identity and not self.inlined(symbol[1]) & set(IDENTIFIER_PROPERTIES):
            return
        yield ("value", node, f"{text(node)} is a whole {symbol[0]}")

    def runtime_function(self, function: Node, bound: frozenset[str]) -> str | None:
        """The name of a function the deployment engine evaluates (reference, list*, ...)."""
        if function.type == "identifier":
            name = text(function)
            if name in self.functions:
                return None
            return name if name in RUNTIME_FUNCTIONS or LIST_FUNCTION.match(name) else None
        if function.type != "member_expression":
            return None
        base, prop = (
            function.child_by_field_name("object"),
            function.child_by_field_name("property"),
        )
        name = text(prop) if prop is not None else ""
        if self.accessed(base, bound) is not None:  # a resource's own list* method
            return name if LIST_FUNCTION.match(name) else None
        if base.type == "identifier" and text(base) in ("az", "sys") and text(base) not in bound:
            return name if name in RUNTIME_FUNCTIONS or LIST_FUNCTION.match(name) else None
        if base.type == "identifier" and text(base) == "this":
            return name if name in THIS_FUNCTIONS else None
        return None

    def variable_chain(self, name: str) -> tuple[str, ...] | None:
        """How a variable comes to hold a run-time value (names, then what), or None. Like the
        compiler, stop at the first one found in source order."""
        if name in self._variable_chains:
            return self._variable_chains[name]
        self._variable_chains[name] = None  # a cycle counts as constant
        chain = None
        value = _value(self.symbols[name][1])
        for kind, _, what in self.scan(value, frozenset(), identity=False) if value else ():
            if kind == "value":
                chain = (name, what)
                break
            inner = self.variable_chain(what)
            if inner is not None:
                chain = (name, *inner)
                break
        self._variable_chains[name] = chain
        return chain

    def findings(self, node: Node | None, bound: frozenset[str], identity: bool = False):
        """(node, explanation) for each run-time value in a place that needs a constant: read
        directly, or through variables (one finding per variable read)."""
        if node is None:
            return
        for kind, where, what in self.scan(node, bound, identity):
            if kind == "value":
                yield where, what
            elif (chain := self.variable_chain(what)) is not None:
                yield (
                    where,
                    f"variable {' -> '.join(chain[:-1])} holds a run-time value ({chain[-1]})",
                )

    # Places that need a constant (DeployTimeConstantContainerVisitor.cs) ----------------------

    def violations(self) -> list[Violation]:
        found = []
        for kind, node, bound in self.containers(self.root, frozenset()):
            if kind == "for":
                found += [
                    _violation(
                        "BCP178",
                        where,
                        f"the array of a for-expression must be known "
                        f"when the deployment starts; {what}",
                    )
                    for where, what in self.findings(_loop_array(node), bound)
                ]
                if node.parent.type == "variable_declaration":
                    variable = _name(node.parent)
                    found += [
                        _violation(
                            "BCP182",
                            where,
                            f"the loop body of variable {variable} must "
                            f"be known when the deployment starts; {what}",
                        )
                        for where, what in self.findings(
                            node.child_by_field_name("body"), bound | _loop_names(node)
                        )
                    ]
            elif kind == "if":
                # reference()/list*() called right in the condition is refused sooner: BCP066
                # (Semantics/NameBindingVisitor.cs binds them only in declaration values).
                found += [
                    _violation("BCP066", where, f"{what}; it may not be called in a condition")
                    if _is_free_call(where)
                    else _violation(
                        "BCP177",
                        where,
                        f"an if-condition must be known when the deployment starts; {what}",
                    )
                    for where, what in self.findings(_first(node), bound)
                ]
            elif kind == "property":
                key = _key(node)
                found += [
                    _violation(
                        "BCP120", where, f"'{key}' must be known when the deployment starts; {what}"
                    )
                    for where, what in self.findings(
                        _prop_value(node), bound, identity=key.lower() in ("scope", "parent")
                    )
                ]
            elif kind == "call":
                function = node.child_by_field_name("function")
                arguments = node.child_by_field_name("arguments")
                found += [
                    _violation(
                        "BCP181",
                        where,
                        f"the arguments of {text(function)}() must be "
                        f"known when the deployment starts; {what}",
                    )
                    for argument in (arguments.named_children if arguments else ())
                    for where, what in self.findings(argument, bound)
                ]
            elif kind == "function":
                names = {
                    text(parameter.named_children[0])
                    for part in node.children
                    if part.type == "parameters"
                    for parameter in part.named_children
                    if parameter.named_child_count
                }
                found += [
                    _violation(
                        "BCP341",
                        where,
                        f"a function's body must be known when the deployment starts; {what}",
                    )
                    for where, what in self.findings(_prop_value(node), bound | names)
                ]
        return found

    def containers(self, node: Node, bound: frozenset[str]):
        """Yield (kind, node, names bound there) for each place that needs a constant."""
        if node is None:
            return
        kind = node.type
        if kind == "resource_declaration" and _is_existing(node):
            # An existing resource's own properties are not checked, only resources nested in it.
            body, inner = _body(node, bound)
            for nested in _nested_resources(body):
                yield from self.containers(nested, inner)
            return
        if kind in ("resource_declaration", "module_declaration"):
            body, inner = _body(node, bound)
            wanted = RESOURCE_CONSTANT_PROPERTIES if kind[0] == "r" else MODULE_CONSTANT_PROPERTIES
            for key, prop in _properties(body).items():
                if key in wanted:
                    yield ("property", prop, inner)
        elif kind == "for_statement":
            yield ("for", node, bound)
            yield from self.containers(_loop_array(node), bound)
            yield from self.containers(node.child_by_field_name("body"), bound | _loop_names(node))
            return
        elif kind == "if_statement":
            yield ("if", node, bound)
        elif kind == "call_expression":
            function = node.child_by_field_name("function")
            if self.runtime_function(function, bound) is not None:
                yield ("call", node, bound)
                if function.type == "member_expression":
                    yield from self.containers(function, bound)
                return
        elif kind == "lambda_expression":
            names, body = _lambda_parts(node)
            for part in body:
                yield from self.containers(part, bound | names)
            return
        elif kind == "user_defined_function":
            yield ("function", node, bound)
        for child in node.named_children:
            yield from self.containers(child, bound)


def _is_free_call(node: Node) -> bool:
    """A call of a function by name (`reference(...)`, `az.listKeys(...)`), not a method."""
    if node.type != "call_expression":
        return False
    function = node.child_by_field_name("function")
    return function.type == "identifier" or text(function).split(".")[0] in ("az", "sys")


def _is_access(node: Node) -> bool:
    """Whether node is the base (or index) of a property or array access. A call's target
    `stg.listKeys()` does not count: the compiler sees an instance call there."""
    parent = _parent(node)
    if parent is None:
        return False
    if parent.type == "subscript_expression":
        return True
    if parent.type == "member_expression":
        grand = parent.parent
        return not (grand is not None and grand.type == "call_expression"
                    and grand.child_by_field_name("function") == parent)  # fmt: skip
    return False
