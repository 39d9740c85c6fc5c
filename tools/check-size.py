#!/usr/bin/env python3
"""Fails when a Swift source file is over 400 lines or a function over 60.

    tools/check-size.py [DIR ...]        (default: Sources)

A function's length counts from its `func` (or `init`) line to its closing
brace. The limits keep each file one structure and each function one idea
(issue #11); a real exception should be split, not exempted.
"""
import pathlib
import re
import sys

MAX_FILE, MAX_FUNC = 400, 60
FUNC = re.compile(r'^\s*(?:@[\w()]+\s+)*(?:(?:public|private|fileprivate|internal|static|mutating|override|final)\s+)*(?:func\s+[\w`]+|init\??)\s*[(<]')


def functions(lines):
    """(name line, first line number, length) for each function body."""
    i = 0
    while i < len(lines):
        if FUNC.match(lines[i]):
            depth, started, j = 0, False, i
            while j < len(lines):
                code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', lines[j].split('//')[0])
                depth += code.count('{') - code.count('}')
                started = started or '{' in code
                if started and depth <= 0:
                    break
                j += 1
            yield lines[i].strip(), i + 1, j - i + 1
            i += 1
        else:
            i += 1


def main(dirs):
    bad = []
    for d in dirs or ['Sources']:
        for path in sorted(pathlib.Path(d).rglob('*.swift')):
            lines = path.read_text().splitlines()
            if len(lines) > MAX_FILE:
                bad.append(f'{path}: {len(lines)} lines (limit {MAX_FILE})')
            for name, line, length in functions(lines):
                if length > MAX_FUNC:
                    bad.append(f'{path}:{line}: {length}-line function (limit {MAX_FUNC}): {name[:70]}')
    for b in bad:
        print('check-size:', b)
    if not bad:
        print(f'check-size: every Swift file under {MAX_FILE} lines, every function under {MAX_FUNC}')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
