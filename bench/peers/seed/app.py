# The seed tutorial's FastAPI JSON-RPC app ("完整示例:构建安全的JSON-RPC子协议" in
# /work/shared/seed/000_*.txt), kept as close to the tutorial's code as it can
# be while running: a peer for `subgate bench -target seed`, not part of the
# product. See bench/peers/README.md for how it is run.
#
# Deviations from the tutorial, all of them:
#   1. `import time` added: the tutorial uses time.time() in chat.ping without
#      importing time, so every chat.ping answered -32000 "name 'time' is not
#      defined".
#   2. Indentation restored (the tutorial's text lost it) and this comment.
# Nothing else is changed, the tutorial's own bugs included (see the README).
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
import json
import time
from pydantic import BaseModel, ValidationError

app = FastAPI()


# JSON-RPC请求模型
class RPCRequest(BaseModel):
    jsonrpc: str = "2.0"
    method: str
    params: dict = {}
    id: int


# JSON-RPC响应模型
class RPCResponse(BaseModel):
    jsonrpc: str = "2.0"
    result: dict = None
    error: dict = None
    id: int


class ConnectionManager:
    def __init__(self):
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket):
        # 协商子协议
        client_protocols = websocket.headers.get("Sec-WebSocket-Protocol", "").split(",")
        client_protocols = [p.strip() for p in client_protocols if p.strip()]

        if "json-rpc" in client_protocols:
            await websocket.accept(subprotocol="json-rpc")
            self.active_connections.append(websocket)
            return True
        else:
            await websocket.close(code=1002, reason="Unsupported subprotocol")
            return False

    def disconnect(self, websocket: WebSocket):
        self.active_connections.remove(websocket)

    async def send_rpc_response(self, response: RPCResponse, websocket: WebSocket):
        await websocket.send_text(json.dumps(response.dict(exclude_none=True)))


manager = ConnectionManager()


# RPC方法处理函数
async def handle_rpc_method(method: str, params: dict) -> dict:
    if method == "chat.broadcast":
        message = params.get("message", "")
        for connection in manager.active_connections:
            await connection.send_text(json.dumps({
                "jsonrpc": "2.0",
                "method": "chat.message",
                "params": {"message": message}
            }))
        return {"status": "ok", "message": "Message broadcasted"}
    elif method == "chat.ping":
        return {"status": "ok", "timestamp": int(time.time())}
    else:
        raise ValueError(f"Method not found: {method}")


@app.websocket("/ws/{client_id}")
async def websocket_endpoint(websocket: WebSocket, client_id: int):
    if not await manager.connect(websocket):
        return

    try:
        while True:
            data = await websocket.receive_text()
            try:
                request = RPCRequest(**json.loads(data))
                try:
                    result = await handle_rpc_method(request.method, request.params)
                    response = RPCResponse(id=request.id, result=result)
                except Exception as e:
                    response = RPCResponse(
                        id=request.id,
                        error={"code": -32000, "message": str(e)}
                    )
                await manager.send_rpc_response(response, websocket)
            except ValidationError as e:
                await websocket.send_text(json.dumps({
                    "jsonrpc": "2.0",
                    "error": {"code": -32600, "message": "Invalid Request", "data": str(e)},
                    "id": None
                }))
    except WebSocketDisconnect:
        manager.disconnect(websocket)
