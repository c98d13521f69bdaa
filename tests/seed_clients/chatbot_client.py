import socket

c1 = socket.socket() # 创建一个对象

c1.connect(("127.0.0.1",9999))  # 表示连接那个服务端，写服务端的IP地址和服务器允许连接的端口
#c1.recv(1024) # 表示客户端“最多”接收1024字节，超过1024接收不了，剩下的就下次接收
result_bytes = c1.recv(1024)  # 发送的是字节类型，那么收到的也是字节类型
# recv也会阻塞,client1连接服务端，按理说服务端应该立即返还给我，但是如果服务端没返还，recv将一直等待
result_str = str(result_bytes,encoding="utf-8") # 将字节转换成字符串
print(result_str)
while True:
    inp = input("请输入要发送的内容>>>：")
    if inp == "q": # 如果输入了q，就只发送就行了，不用接收了
        c1.sendall(bytes(inp,encoding="utf-8")) # python2中可以发送字符串或者是字节，但是在python3中只能发送字节，而且只能字符串使用encoding转码，bytes不能转码
        break
    else: # 如果输入的不是q，那么就既要发送，又要接收
        c1.sendall(bytes(inp,encoding="utf-8"))
        result = str(c1.recv(1024),encoding="utf-8")
        print(result)
c1.close() # 连接完就关闭

