"""The admin service: ``chatrpc.v1.AdminService`` on the server's Unix socket.

``service`` holds the calls (over the hub and the store), ``socket`` the gRPC
server on the Unix socket, whose file mode is the authorization.
"""

from .service import AdminService
from .socket import AdminServer

__all__ = ["AdminServer", "AdminService"]
