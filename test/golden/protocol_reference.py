"""Golden outputs of the reference's parsing and reward rules on generated text, written from the
definitions in Seg-ReSearch (spec §3.4, §4, §5: `verl_tool/workers/reward_manager/okvos.py`,
`verl_tool/servers/tools/{local_retrieval,keyframe}.py`) and Seg-Zero (§11.3: `seg.py`,
`seg_restrict.py`), with Python's own `json` and the `regex` / `re` modules the reference uses.

Output: test/fixtures/golden/protocol.json. Run from the repository root:
    python test/golden/protocol_reference.py
"""
import json
import math
import os
import random
import re as stdre

import regex as re

# ---------------------------------------------------------------- canonical value encoding


def canon(v):
    """A string form of a json.loads value that the TypeScript test can rebuild exactly."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        try:
            x = float(v)
        except OverflowError:
            x = math.inf if v > 0 else -math.inf
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x.is_integer():
            return str(int(x))
        return repr(x)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ",".join(canon(x) for x in v) + "]"
    return "{" + ",".join(json.dumps(k) + ":" + canon(x) for k, x in v.items()) + "}"


def loads(text):
    try:
        return {"ok": True, "value": canon(json.loads(text))}
    except json.JSONDecodeError as e:
        return {"ok": False, "error": str(e)}


# ---------------------------------------------------------------- Seg-ReSearch reward rules


def box_iou_inclusive(b1, b2):
    ix1 = max(b1[0], b2[0])
    iy1 = max(b1[1], b2[1])
    ix2 = min(b1[2], b2[2])
    iy2 = min(b1[3], b2[3])
    inter = (ix2 - ix1 + 1) * (iy2 - iy1 + 1) if ix1 < ix2 and iy1 < iy2 else 0
    a1 = (b1[2] - b1[0] + 1) * (b1[3] - b1[1] + 1)
    a2 = (b2[2] - b2[0] + 1) * (b2[3] - b2[1] + 1)
    return float(inter) / (a1 + a2 - inter)


def r_iou(pred, gt):
    try:
        return 1.0 if box_iou_inclusive(pred["bbox_2d"], gt["bbox_2d"]) > 0.5 else 0.0
    except Exception:
        return 0.0


def r_box(pred, gt):
    try:
        b1, b2 = pred["bbox_2d"], gt["bbox_2d"]
        d = (abs(b1[0] - b2[0]) + abs(b1[1] - b2[1]) + abs(b1[2] - b2[2]) + abs(b1[3] - b2[3])) / 4
        return 1.0 if d < 10 else 0.0
    except Exception:
        return 0.0


def r_point(pred, gt):
    try:
        p, b = pred["point_2d"], pred["bbox_2d"]
        if b[0] <= p[0] <= b[2] and b[1] <= p[1] <= b[3]:
            g = gt["point_2d"]
            if math.sqrt((p[0] - g[0]) ** 2 + (p[1] - g[1]) ** 2) < 100:
                return 1.0
    except Exception:
        pass
    return 0.0


def fmt(s):
    if not re.search(r"<thinking>.*?</thinking>\s*<keyframe>\s*(\d+)\s*</keyframe>", s, re.S):
        return 0.0
    m = re.search(r"<thinking>.*?</thinking>\s*<answer>\s*(.*?)\s*</answer>", s, re.S)
    if m:
        try:
            a = json.loads(m.group(1).strip())
            if (
                set(a.keys()) == {"bbox_2d", "point_2d"}
                and isinstance(a["bbox_2d"], list)
                and len(a["bbox_2d"]) == 4
                and all(isinstance(x, (int, float)) for x in a["bbox_2d"])
                and isinstance(a["point_2d"], list)
                and len(a["point_2d"]) == 2
                and all(isinstance(x, (int, float)) for x in a["point_2d"])
            ):
                return 1.0
        except Exception:
            pass
    return 0.0


def outcome(s, gt_text):
    gt = json.loads(gt_text)
    r = [0.0, 0.0, 0.0, 0.0]
    try:
        frame = re.search(r"<keyframe>\s*(\d+)\s*</keyframe>", s, re.S).group(1).strip()
        pred = json.loads(re.search(r"<answer>(.*?)</answer>", s).group(1).strip())
        if frame in gt:
            g = gt[frame]
            r = [r_iou(pred, g), r_box(pred, g), r_point(pred, g), g.get("max_conn_area", 0)]
    except Exception:
        pass
    return r


def search_steps(s):
    return len(re.findall(r"<thinking>.*?</thinking>\s*<search>.*?</search>", s, re.S))


def tpr(s):
    k = min(search_steps(s), 10) + fmt(s)
    return 1 - (1 - 0.7) ** k


IGR_PATTERN = r'\{"name":\s*"text_search".*?"query":\s*"(.*?)"\}'


def first_query(s):
    m = re.search(IGR_PATTERN, s, re.DOTALL)
    return m.group(1) if m else None


# ---------------------------------------------------------------- tool parsing


def search_action(action):
    if "</search>" not in action:
        return None
    blocks = re.findall(r"<search>(.*?)</search>", action, re.DOTALL)
    if not blocks:
        return None
    q = blocks[-1].strip()
    try:
        d = json.loads(q)
    except json.JSONDecodeError as e:
        return {"observation": f"Invalid JSON format in search query: {str(e)}"}
    try:
        missing = []
        if "query" not in d:
            missing.append("query")
        if "name" not in d:
            missing.append("name")
        if missing:
            return {"observation": f"Missing parameters: {', '.join(missing)}"}
        name = d["name"]
        query = d["query"]
    except TypeError:
        return {"crash": True}
    if name not in ["text_search", "image_search"]:
        return {"observation": f"Invalid 'name' parameter. Expected one of {['text_search', 'image_search']}, but got '{name}'."}
    return {"tool": name, "query": str(query)}


def keyframe_action(action):
    if "</keyframe>" not in action:
        return None
    m = re.search(r"<keyframe>\s*(.*?)\s*</keyframe>", action, re.DOTALL)
    if not m:
        return {"valid": False}
    try:
        return {"valid": True, "frame": int(m.group(1).strip())}
    except ValueError:
        return {"valid": False}


def one_line_answer(s):
    m = re.search(r"<answer>(.*?)</answer>", s)
    return None if m is None else m.group(1)


# ---------------------------------------------------------------- Seg-Zero rules


def sz_thinking(s):
    return 1.0 if stdre.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", s, stdre.DOTALL) else 0.0


def sz_first_json(s):
    m = stdre.search(r"{[^}]+}", s)
    return None if m is None else json.loads(m.group(0))


def sz_seg_format(s, strict):
    try:
        data = sz_first_json(s)
        if data is None:
            return 0.0
        if strict:
            for k in ["bbox", "points_1", "points_2"]:
                if k not in data:
                    return 0.0
            if not isinstance(data["bbox"], list) or len(data["bbox"]) != 4:
                return 0.0
            for k in ["points_1", "points_2"]:
                if not isinstance(data[k], list) or len(data[k]) != 2:
                    return 0.0
            return 1.0
        bbox_key, points = None, []
        for k in data.keys():
            if "bbox" in k.lower() and bbox_key is None:
                bbox_key = k
            elif "point" in k.lower():
                points.append(k)
        if not (bbox_key and len(points) >= 2):
            return 0.0
        if len(data[bbox_key]) != 4:
            return 0.0
        for k in points[:2]:
            if len(data[k]) != 2:
                return 0.0
        return 1.0
    except Exception:
        return 0.0


def sz_gt_box(gt):
    m = stdre.search(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>", gt.strip())
    return [int(m.group(i)) for i in range(1, 5)] if m else None


def sz_gt_points(gt):
    m = stdre.search(r"<points>\((\d+),(\d+)\),\((\d+),(\d+)\)</points>", gt)
    return [[int(m.group(1)), int(m.group(2))], [int(m.group(3)), int(m.group(4))]] if m else None


def sz_bbox_key(data, strict):
    return "bbox" if strict else next((k for k in data.keys() if "bbox" in k.lower()), None)


def sz_iou(s, gt, strict):
    try:
        g = sz_gt_box(gt)
        data = sz_first_json(s)
        if data is not None:
            k = sz_bbox_key(data, strict)
            if k and len(data[k]) == 4:
                if box_iou_inclusive(data[k], g) > 0.5:
                    return 1.0
    except Exception:
        pass
    return 0.0


def sz_box(s, gt, strict):
    try:
        g = sz_gt_box(gt)
        data = sz_first_json(s)
        if data is not None:
            k = sz_bbox_key(data, strict)
            if k and len(data[k]) == 4:
                b = data[k]
                if (abs(b[0] - g[0]) + abs(b[1] - g[1]) + abs(b[2] - g[2]) + abs(b[3] - g[3])) / 4 < 10:
                    return 1.0
    except Exception:
        pass
    return 0.0


def sz_point(s, gt, strict):
    try:
        gp = sz_gt_points(gt)
        data = sz_first_json(s)
        if data is not None:
            k = sz_bbox_key(data, strict)
            if k and len(data[k]) == 4:
                box = data[k]
            keys = ["points_1", "points_2"] if strict else [x for x in data.keys() if "points" in x.lower()][:2]
            if len(keys) == 2:
                p1, p2 = data[keys[0]], data[keys[1]]
                p1 = [int(p1[0]), int(p1[1])]
                p2 = [int(p2[0]), int(p2[1])]

                def inside(p):
                    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]

                if inside(p1) and inside(p2):
                    d1 = math.dist(p1, gp[0]) + math.dist(p2, gp[1])
                    d2 = math.dist(p1, gp[1]) + math.dist(p2, gp[0])
                    if min(d1, d2) / 2 < 100:
                        return 1.0
    except Exception:
        pass
    return 0.0


def seg_zero(s, gt, strict):
    return [sz_thinking(s), sz_seg_format(s, strict), sz_iou(s, gt, strict), sz_box(s, gt, strict), sz_point(s, gt, strict)]


# ---------------------------------------------------------------- generated inputs

JSON_TOKENS = ['{', '}', '[', ']', '"', '\\', 'u', 'd83d', 'de00', '00e9', ':', ',', ' ', '\n', '\t', '1', '-', '0', '.', 'e', 'E', '+', '12', 'NaN', 'Infinity', '-Infinity', 'true', 'false', 'null', 'nul', 'x', 'é', '\x01', '"a"', '😀', '\ufeff', '"bbox_2d"', '"k": ', '\\n', '\\"', '\\/', '\\x']

JSON_CASES = [
    '', ' ', '{}', '[]', '{"bbox_2d": [1, 2, 3, 4], "point_2d": [5, 6]}', '[1, 2,]', '{"a": 1,}', '{"a" 1}', "{'a': 1}",
    '{"a": NaN, "b": Infinity, "c": -Infinity}', '1.', '01', '-', '-0', '1e5', '1E+5', '1e', '1.5e-3', '.5', '"abc', '"a\\qb"',
    '"\\u12"', '"\\u12G4"', '"\\ud83d\\ude00"', '"\\ud83d"', '"\\ud83d\\u0041"', '"\\ud83dx"', '"\x05"', '\ufeff{}', '{"a":1} x', '{"a":1}\n\n',
    '[1, 2] [3]', 'tru', 'nan', '{"__proto__": 1, "b": {"__proto__": [2]}}', '{"a": 1, "a": 2}', '\n{\n"a":\n}', '"\\u00e9\\n"',
    '[1e400, -1e400, 123456789012345678901234567890]', '{"bbox_2d": [true, false, 1.0, 2], "point_2d": [null, "x"]}',
]

FRAGMENTS = [
    '<thinking>', '</thinking>', ' ', '\n', '\u3000', '\x1c', '\x85', '<search>', '</search>', '<keyframe>', '</keyframe>', '<answer>', '</answer>',
    '<information>', '</information>', '0', '5', '12', '٣', '05', ' 5 ', 'plan', 'the dog', '"}', '"query": "', '{"name": "text_search", ',
    '{"name": "text_search", "query": "who won the 2025 Qatar GP"}', '{"name":"text_search","query":"x\\"y"}', '{"name": "image_search", "query": "red car"}',
    '{"name": "web", "query": "q"}', '{"query": "q"}', '{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450]}',
    '{"bbox_2d": [105, 195, 402, 705], "point_2d": [260, 440]}', '{"bbox_2d": [100, 200, 400, 700], "point_2_d": [250, 450]}',
    '{"bbox_2d": [100, 200, 400], "point_2d": [250, 450]}', '{"bbox_2d": [true, 200, 400, 700], "point_2d": [250, 450]}',
    '{"bbox_2d": [NaN, 200, 400, 700], "point_2d": [250, 450]}', '{"bbox_2d": ["a", 200, 400, 700], "point_2d": [250, 450]}',
    '{"bbox_2d": [0, 0, 0, 0], "point_2d": [0, 0]}', '[1, 2]', '"str"', '{"bbox_2d": [100, 200, 400, 700], "point_2d": [250, 450], "x": 1}',
    '{"bbox_2d": [100, 200, 400, 700],\n"point_2d": [250, 450]}', '{"bbox_2d": [900, 900, 100, 100], "point_2d": [500, 500]}',
]

GT = json.dumps({
    "0": {"area": 0.5, "bbox_2d": [98, 202, 399, 698], "max_conn_area": 0.4, "point_2d": [240, 460]},
    "5": {"area": 1.0, "bbox_2d": [100, 200, 400, 700], "max_conn_area": 1.0, "point_2d": [250, 450]},
    "12": {"area": 0.25, "bbox_2d": [600, 600, 700, 700], "max_conn_area": 0.2, "point_2d": [650, 650]},
})


def realistic(rng):
    parts = []
    for _ in range(rng.randint(0, 3)):
        q = rng.choice(['{"name": "text_search", "query": "winner of the race"}', '{"name": "image_search", "query": "a logo"}', '{"name":"text_search","query":"x"}', 'not json'])
        parts.append(f"<thinking> search plan </thinking>{rng.choice([' ', chr(10), ''])}<search> {q} </search>")
        parts.append("<information>1. (Title: T) body text\n</information>\n\n")
    if rng.random() < 0.85:
        parts.append(f"<thinking> compare </thinking>{rng.choice([' ', chr(10)])}<keyframe> {rng.choice(['0', '5', '12', '7', '05'])} </keyframe>")
        parts.append("Here is the high-res version of your selected frame: ")
    if rng.random() < 0.85:
        parts.append(f"<thinking> locate </thinking>\n<answer> {rng.choice(FRAGMENTS[31:])} </answer>")
    return "".join(parts)


SZ_FRAGMENTS = ['<think>', '</think>', ' ', '\n', '<answer>', '</answer>', 'reasoning', '{', '}', "{'bbox': [1,2,3,4]}",
    '{"bbox": [100, 100, 300, 300], "points_1": [150, 150], "points_2": [250, 250]}',
    '{"bbox": [105, 95, 305, 298], "points_1": [150.7, 150], "points_2": ["250", 250]}',
    '{"bbox_2d": [100, 100, 300, 300], "point_a": [150, 150], "points_b": [250, 250]}',
    '{"BBox": [100, 100, 300, 300], "Points_1": [150, 150], "Points_2": [250, 250]}',
    '{"bbox": [100, 100, 300], "points_1": [150, 150], "points_2": [250, 250]}',
    '{"bbox": [100, 100, 300, 300], "points_1": [50, 150], "points_2": [250, 250]}',
    '{"bbox": [100, 100, 300, 300], "points_1": [150, 150, 1], "points_2": [250, 250]}',
    '{"bbox": [100, 100, 300, 300], "points_1": [150, 150]}', '{"bbox": "abcd", "points_1": "ab", "points_2": "cd"}',
    '{"bbox": [100, 100, 300, 300], "points_1": {"a": 1}, "points_2": [2, 3]}', '{"a": {"b": 1}}']
SZ_GT = "<box>(98,102),(301,299)</box><points>(160,140),(240,260)</points>"


def main():
    rng = random.Random(20260214)
    out_path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "golden", "protocol.json")

    json_cases = list(JSON_CASES)
    for _ in range(300):
        json_cases.append("".join(rng.choice(JSON_TOKENS) for _ in range(rng.randint(1, 10))))
    pyjson = [{"input": t, **loads(t)} for t in json_cases]

    responses = []
    for _ in range(180):
        responses.append("".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 20))))
    for _ in range(100):
        responses.append(realistic(rng))
    rewards = []
    for s in responses:
        iou, box, point, frame = outcome(s, GT)
        rewards.append({
            "response": s,
            "format": fmt(s),
            "searchSteps": search_steps(s),
            "tpr": tpr(s),
            "iou": iou, "box": box, "point": point, "frame": frame,
            "numSearch": float(s.count("<search>")),
            "firstQuery": first_query(s),
            "allQueries": re.findall(IGR_PATTERN, s, re.DOTALL),
            "oneLineAnswer": one_line_answer(s),
            "searchAction": search_action(s),
            "keyframeAction": keyframe_action(s),
        })

    sz = []
    for _ in range(160):
        s = "".join(rng.choice(SZ_FRAGMENTS) for _ in range(rng.randint(0, 9)))
        sz.append({"response": s, "soft": seg_zero(s, SZ_GT, False), "strict": seg_zero(s, SZ_GT, True)})
    for body in SZ_FRAGMENTS[8:]:
        s = f"<think> reasoning </think>\n<answer>{body}</answer>"
        sz.append({"response": s, "soft": seg_zero(s, SZ_GT, False), "strict": seg_zero(s, SZ_GT, True)})

    with open(out_path, "w") as fh:
        json.dump({"generator": "test/golden/protocol_reference.py", "groundTruth": GT, "segZeroGroundTruth": SZ_GT, "pyjson": pyjson, "rewards": rewards, "segZero": sz}, fh, ensure_ascii=True)
    print(f"wrote {out_path}: {len(pyjson)} json cases, {len(rewards)} responses, {len(sz)} Seg-Zero responses")


if __name__ == "__main__":
    main()
