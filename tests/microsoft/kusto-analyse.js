// Kusto.Language, the parser and semantic analyser behind Log Analytics, as a long-lived
// process: one JSON request per line on stdin, one JSON answer per line on stdout.
//
//   node kusto-analyse.js tables.json
//   {"text": "AppTraces | take 1"}  ->  {"diagnostics": [{"severity": ..., "code": ...,
//                                        "message": ..., "start": ..., "length": ...,
//                                        "syntax": true when the parser found it}],
//                                        "calls": [{"name": ..., "start": ..., "length": ...}]}
//
// tables.json maps each workspace table to its columns: {"AppTraces": [["Message", "string"],
// ...]}. Loading the package takes about a second, so the tests keep one process running.
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");

const home = path.dirname(require.resolve("@kusto/language-service-next/package.json"));
require(path.join(home, "bridge.js")); // defines the globals Bridge and System
require(path.join(home, "Kusto.Language.Bridge.js")); // defines the global Kusto

const Symbols = Kusto.Language.Symbols;

function globalsFor(tables) {
  const symbols = Object.entries(tables).map(([name, columns]) => {
    const schema = "(" + columns.map(([column, type]) => `['${column}']:${type}`).join(", ") + ")";
    return new Symbols.TableSymbol.$ctor7(name, schema, null);
  });
  const database = new Symbols.DatabaseSymbol.ctor("workspace", symbols);
  return Kusto.Language.GlobalState.Default.WithDatabase(database);
}

function list(items) {
  const out = [];
  for (let i = 0; i < items.Count; i++) out.push(items.getItem(i));
  return out;
}

// Every function the query calls, by name and position: the caller adds the rules that
// Log Analytics has beyond the engine dialect (functions it does not support).
function calls(code) {
  const found = [];
  code.Syntax.WalkElements((element) => {
    if (element instanceof Kusto.Language.Syntax.FunctionCallExpression) {
      found.push({ name: element.Name.SimpleName, start: element.TextStart,
                   length: element.Width });
    }
  });
  return found;
}

function analyse(text, globals) {
  const code = Kusto.Language.KustoCode.ParseAndAnalyze(text, globals);
  const key = (d) => `${d.Code}@${d.Start}+${d.Length}`;
  const syntax = new Set(list(code.GetSyntaxDiagnostics()).map(key));
  const diagnostics = list(code.GetDiagnostics()).map((d) => ({
    severity: String(d.Severity), code: d.Code, message: d.Message,
    start: d.Start, length: d.Length, syntax: syntax.has(key(d)),
  }));
  return { diagnostics, calls: calls(code) };
}

const globals = globalsFor(JSON.parse(fs.readFileSync(process.argv[2], "utf8")));
const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
  let answer;
  try {
    answer = analyse(JSON.parse(line).text, globals);
  } catch (error) {
    answer = { failure: String(error && error.stack || error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
